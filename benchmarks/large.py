"""Large images: peak memory and time of whole-image against blockwise prediction, a 20,000 x 20,000 Zarr end to end,
Dask throughput with 1 and 2 workers, and StarDist's 2D model as a timing anchor on the same images.

    python benchmarks/large.py [--sizes 1024 4096] [--huge 20000] [--stardist] [--dask] [--out benchmarks/large.json]
    python benchmarks/large.py --sizes --huge 0 --small-nuclei 2048 --out benchmarks/small_nuclei.json

--small-nuclei SIDE: a SIDE x SIDE field whose nuclei are a quarter of the training diameter (4.5 px), so that
prediction enlarges it 4 times a side: under 4 MP as a file, 16 times that at the working scale. `predict`'s own
route (blocks, since the working size is above 4 MP) against the whole image as it went before.

Every measurement runs in a fresh child process, so that its peak resident memory (ru_maxrss, the runtime's own
footprint included) is its own. Images are synthetic fluorescence fields (`synthesize_sample` tiled), the model is the
shipped dsb2018, and the nucleus diameter is given (18 px) so that every run does the same work.

StarDist: `StarDist2D(Config2D(n_channel_in=1))`, its default 2D configuration, untrained (no weights can be
downloaded here). Its network costs what a trained one costs, but an untrained model's probabilities sit near 0.5
everywhere, so its default threshold would hand almost every pixel to non-maximum suppression. The probability
threshold is therefore set to the quantile that keeps as many candidate pixels as our model finds nucleus pixels
in the same image: the same amount of work as a trained model, not the same result.
"""
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
repository = Path(__file__).resolve().parents[1]
DIAMETER = 18.0

def field(height: int, width: int):
    "A synthetic fluorescence field of any size, tiled from one 512x512 sample (grey, uint8)."
    import numpy as np
    from fcn_nuclei.sources import synthesize_sample
    tile = synthesize_sample(0, 512, 512)[0][..., 0]
    return np.tile(tile, (height // 512 + 1, width // 512 + 1))[:height, :width]

def peak_mb() -> float: return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)

def ours(size: int, mode: str) -> dict:
    "predict_paths end to end on a PNG: 'whole' (one image), 'blocks' (default blocks), 'small-blocks' (1024-pixel blocks, 512-pixel tiles)."
    from PIL import Image
    from fcn_nuclei.predict import pretrained_path
    from fcn_nuclei.predict_files import predict_paths
    folder = Path(tempfile.mkdtemp())
    Image.fromarray(field(size, size)).save(folder/'image.png')
    options = dict(whole=dict(blockwise_pixels=10 ** 12), blocks=dict(blockwise_pixels=0), **{'small-blocks': dict(blockwise_pixels=0, block=1024, tile=512)})[mode]
    started = time.perf_counter()
    report = predict_paths(pretrained_path(), [folder/'image.png'], folder/'out', progress=False, diameter=DIAMETER, **options)
    return dict(method=f'fcn-nuclei {mode}', size=size, seconds=round(time.perf_counter() - started, 2), nuclei=report.nuclei.get('image'), peak_rss_mb=peak_mb())

def small_nuclei(size: int, mode: str) -> dict:
    "predict_paths on a field with nuclei of a quarter of the training diameter: 'whole' (forced) or 'default' (predict's own choice: blocks above 4 MP at the working scale)."
    import numpy as np
    from PIL import Image
    from fcn_nuclei.predict import pretrained_path
    from fcn_nuclei.predict_files import predict_paths
    folder = Path(tempfile.mkdtemp())
    Image.fromarray(field(4 * size, 4 * size)).resize((size, size), Image.BILINEAR).save(folder/'image.png')
    options = dict(whole=dict(blockwise_pixels=10 ** 12), default={})[mode]
    started = time.perf_counter()
    report = predict_paths(pretrained_path(), [folder/'image.png'], folder/'out', progress=False, diameter=DIAMETER / 4, **options)
    return dict(method=f'fcn-nuclei small nuclei, {mode}', size=size, diameter=DIAMETER / 4, seconds=round(time.perf_counter() - started, 2), nuclei=report.nuclei.get('image'), peak_rss_mb=peak_mb())

def huge(size: int) -> dict:
    "A size x size field written as Zarr, predicted to Zarr labels: neither image nor labels are ever whole in memory."
    import zarr
    from fcn_nuclei.predict import pretrained_path
    from fcn_nuclei.predict_files import predict_paths
    folder = Path(tempfile.mkdtemp())
    image = zarr.open(str(folder/'field.zarr'), mode='w', shape=(size, size), chunks=(1024, 1024), dtype='uint8')
    band = field(1024, size)
    for top in range(0, size, 1024): image[top:top + 1024] = band[:min(1024, size - top)]
    del band
    started = time.perf_counter()
    report = predict_paths(pretrained_path(), [folder/'field.zarr'], folder/'out', progress=False, diameter=DIAMETER, output_format='zarr')
    return dict(method='fcn-nuclei blocks, Zarr in and out', size=size, seconds=round(time.perf_counter() - started, 2), nuclei=report.nuclei.get('field'), peak_rss_mb=peak_mb())

def network(size: int) -> dict:
    "Our network alone on the image as the contract prepares it (tiled as predict does)."
    import numpy as np
    from fcn_nuclei.predict import load_pretrained, predict_probabilities
    from fcn_nuclei.normalize import normalize_image
    model = load_pretrained()
    prepared, _ = normalize_image(field(size, size))
    predict_probabilities(model, prepared[:512, :512])
    started = time.perf_counter()
    probabilities = predict_probabilities(model, prepared)
    return dict(method='fcn-nuclei network alone', size=size, seconds=round(time.perf_counter() - started, 2), foreground=float((probabilities[..., 0] > 0.5).mean()), peak_rss_mb=peak_mb())

def stardist(size: int, foreground: float) -> dict:
    "StarDist2D's default 2D model, untrained: its network alone, and predict_instances end to end with a calibrated threshold."
    import numpy as np
    from csbdeep.utils import normalize
    from stardist.models import Config2D, StarDist2D
    model = StarDist2D(Config2D(n_channel_in=1), name=None, basedir=None)
    image = normalize(field(size, size), 1, 99.8)
    n_tiles = model._guess_n_tiles(image) if size > 2048 else None
    model.predict(image[:512, :512])
    started = time.perf_counter()
    probability, _ = model.predict(image, n_tiles=n_tiles)
    network_seconds = time.perf_counter() - started
    threshold = float(np.quantile(probability, 1 - foreground))
    started = time.perf_counter()
    labels, _ = model.predict_instances(image, n_tiles=n_tiles, prob_thresh=threshold, show_tile_progress=False)
    return dict(method='StarDist2D default config (untrained)', size=size, network_seconds=round(network_seconds, 2), seconds=round(time.perf_counter() - started, 2),
                prob_thresh=round(threshold, 5), candidates=float((probability > threshold).mean()), nuclei=int(labels.max()), peak_rss_mb=peak_mb())

def dask_throughput(images: int, workers: int) -> dict:
    "A folder of 1024x1024 fields: one process (workers 0) against a local Dask cluster of `workers` processes."
    from PIL import Image
    from fcn_nuclei.predict import pretrained_path
    from fcn_nuclei.predict_files import predict_paths
    folder = Path(tempfile.mkdtemp())
    for index in range(images): Image.fromarray(field(1024, 1024 + 32 * index)).save(folder/f'field{index}.png')
    paths = sorted(folder.glob('field*.png'))
    runner, client, started = None, None, time.perf_counter()
    if workers:
        from fcn_nuclei.distributed import DaskRunner, connect
        client = connect(workers=workers); runner = DaskRunner(client, pretrained_path())
    ready = time.perf_counter()
    report = predict_paths(pretrained_path(), paths, folder/'out', progress=False, diameter=DIAMETER, runner=runner)
    finished = time.perf_counter()
    if client: client.close(); client.cluster.close()
    return dict(method=f'{workers} Dask workers' if workers else 'one process', images=images, start_seconds=round(ready - started, 2), seconds=round(finished - ready, 2),
                images_per_minute=round(60 * images / (finished - ready), 1), nuclei=sum(report.nuclei.values()), failures=len(report.failures))

def child(arguments: list[str], timeout: int) -> dict:
    "Run one measurement in a fresh process."
    try: done = subprocess.run([sys.executable, __file__, '--child', *arguments], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: return dict(child=arguments, error=f'did not finish in {timeout} s')
    if done.returncode: return dict(child=arguments, error=done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f'exit {done.returncode}')
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='*', default=[1024, 4096])
    parser.add_argument('--huge', type=int, default=20000, help='side of the Zarr image (0: skip)')
    parser.add_argument('--stardist', action='store_true', help='time StarDist too (pip install stardist)')
    parser.add_argument('--dask', type=int, default=0, metavar='IMAGES', help='Dask throughput on this many 1024x1024 images (0: skip)')
    parser.add_argument('--small-nuclei', type=int, default=0, metavar='SIDE', help='a field of this side with nuclei a quarter of the training diameter, whole against predict\'s route (0: skip)')
    parser.add_argument('--timeout', type=int, default=1800, help='seconds allowed to each measurement')
    parser.add_argument('--out', type=Path, default=repository/'benchmarks'/'large.json')
    parser.add_argument('--child', nargs='+', default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        kind, *rest = arguments.child
        functions = dict(ours=lambda: ours(int(rest[0]), rest[1]), huge=lambda: huge(int(rest[0])), small=lambda: small_nuclei(int(rest[0]), rest[1]), network=lambda: network(int(rest[0])),
                         stardist=lambda: stardist(int(rest[0]), float(rest[1])), dask=lambda: dask_throughput(int(rest[0]), int(rest[1])))
        print(json.dumps(functions[kind]()))
        sys.exit(0)
    started, results = time.perf_counter(), []
    for size in arguments.sizes:
        for mode in ('whole', 'blocks', 'small-blocks'): results.append(child(['ours', str(size), mode], arguments.timeout))
        own_network = child(['network', str(size)], arguments.timeout); results.append(own_network)
        if arguments.stardist and 'foreground' in own_network: results.append(child(['stardist', str(size), str(own_network['foreground'])], arguments.timeout))
    if arguments.huge: results.append(child(['huge', str(arguments.huge)], arguments.timeout))
    if arguments.small_nuclei:
        pair = [child(['small', str(arguments.small_nuclei), mode], arguments.timeout) for mode in ('whole', 'default')]
        results += pair
        if all('peak_rss_mb' in result for result in pair):
            print(f"small nuclei, {arguments.small_nuclei}x{arguments.small_nuclei}: predict's route {pair[1]['peak_rss_mb'] / pair[0]['peak_rss_mb']:.2f}x the whole image's peak memory, "
                  f"{pair[1]['seconds'] / pair[0]['seconds']:.2f}x its time; {pair[1]['nuclei']} nuclei against {pair[0]['nuclei']}", file=sys.stderr)
    if arguments.dask:
        for workers in (0, 1, 2): results.append(child(['dask', str(arguments.dask), str(workers)], arguments.timeout))
    payload = dict(benchmark='large images: whole against blockwise, Zarr, Dask, StarDist', command='python benchmarks/large.py ' + ' '.join(sys.argv[1:]),
                   diameter=DIAMETER, cores=os.cpu_count(), cpu=platform.processor() or platform.machine(), date=time.strftime('%Y-%m-%d'),
                   wall_seconds=round(time.perf_counter() - started, 1), results=results)
    arguments.out.write_text(json.dumps(payload, indent=2) + '\n')
    print(json.dumps(payload, indent=2))
