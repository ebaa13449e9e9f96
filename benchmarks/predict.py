"""Inference benchmark: end-to-end time (read, predict, post-process, write) and peak memory per image size.

    python benchmarks/predict.py [--model PATH] [--sizes 256 1024 4096] [--repeats 3] [--diameter PX] [--engines keras onnx]
    python benchmarks/predict.py --sizes 256 --estimate-ratio 18 --cli-images 20      # the diameter estimate's cost, as ratios

`--estimate-ratio D` times every size twice in the same run, the diameter estimated and given as D pixels, and prints
`estimate_over_given` per size: of the later calls, which find the model loaded (`load_predictor`), and of the first
call in the process (`first_call`), which loads it and traces the estimate's graph; `--cli-images N` also times
`fcn-nuclei predict` on N images of the first size, start-up included, with and without `--diameter D` (issue 37's
target: at most 1.5x for a 256x256 image).

Each size runs in a fresh process, so its peak resident memory (ru_maxrss, TensorFlow's own footprint included) is
its own. The image is a synthetic fluorescence field of that size written as PNG; the model defaults to the trained
skips model shipped as dsb2018 (an untrained skips model, same arithmetic, if it is absent). Prints JSON.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

repository = Path(__file__).resolve().parents[1]

def one_size(model: str, size: int, repeats: int, diameter: float | None = None, engine: str = 'keras') -> dict:
    "Run in a child process: time predict_paths on one image of `size` x `size`, report peak memory."
    import resource
    import numpy as np
    from PIL import Image
    from fcn_nuclei.sources import synthesize_sample
    from fcn_nuclei.models import build_fcn
    from fcn_nuclei.predict_files import predict_paths
    folder = Path(tempfile.mkdtemp())
    if not Path(model).is_file():
        build_fcn('skips', outputs=2).save(folder/'model.keras'); model = folder/'model.keras'
    tile = synthesize_sample(0, 512, 512)[0]
    image = np.tile(tile, (size // 512 + 1, size // 512 + 1, 1))[:size, :size]
    Image.fromarray(image).save(folder/'image.png')
    started = time.perf_counter()
    predict_paths(model, [folder/'image.png'], folder/'warm', progress=False, diameter=diameter, engine=engine)  # load and trace (or export) once
    first = time.perf_counter() - started
    times = []
    for index in range(repeats):
        started = time.perf_counter()
        report = predict_paths(model, [folder/'image.png'], folder/f'out{index}', progress=False, diameter=diameter, engine=engine)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return dict(engine=engine, size=f'{size}x{size}', seconds_median=round(seconds, 3), seconds=[round(t, 3) for t in times], first_seconds=round(first, 3),
                ms_per_megapixel=round(1000 * seconds / (size * size / 1e6), 1), nuclei=report.nuclei.get('image'),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0))

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default=str(repository/'fcn_nuclei'/'pretrained'/'dsb2018'/'model.keras'), help='a .keras file (default: the shipped dsb2018)')
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 1024, 4096])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--diameter', type=float, default=None, help='give the nucleus diameter (skips the per-image estimate)')
    parser.add_argument('--engines', nargs='+', default=['keras'], choices=['keras', 'onnx'], help='prediction engines to time, each size in the same run (onnx needs the onnx extra)')
    parser.add_argument('--estimate-ratio', type=float, default=None, metavar='D', help='also time each size with --diameter D, and print the ratio estimated / given')
    parser.add_argument('--cli-images', type=int, default=0, metavar='N', help='with --estimate-ratio: also time fcn-nuclei predict on N images of the first size, with and without --diameter')
    parser.add_argument('--child', type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument('--engine', default='keras', help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if arguments.child:
        print(json.dumps(one_size(arguments.model, arguments.child, arguments.repeats if arguments.child < 4096 else 1, arguments.diameter, arguments.engine)))
        sys.exit(0)
    results, ratios = [], {}
    def run_child(size, engine, diameter):
        "One size in a fresh process: its JSON row."
        child = subprocess.run([sys.executable, __file__, '--model', arguments.model, '--repeats', str(arguments.repeats), '--child', str(size), '--engine', engine]
                               + (['--diameter', str(diameter)] if diameter else []), capture_output=True, text=True)
        if child.returncode: sys.exit(child.stderr[-3000:])
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(json.dumps(row), file=sys.stderr, flush=True)
        return row
    for size in arguments.sizes:
        for engine in arguments.engines:
            results.append(run_child(size, engine, arguments.diameter))
            if arguments.estimate_ratio:
                given = run_child(size, engine, arguments.estimate_ratio)
                ratios[f'{size}x{size} {engine}'] = dict(estimated=results[-1]['seconds_median'], given=given['seconds_median'],
                                                         estimate_over_given=round(results[-1]['seconds_median'] / given['seconds_median'], 2),
                                                         first_call=dict(estimated=results[-1]['first_seconds'], given=given['first_seconds'],  # the model loaded and the estimate traced in this call
                                                                         estimate_over_given=round(results[-1]['first_seconds'] / given['first_seconds'], 2)))
    if arguments.estimate_ratio and arguments.cli_images:
        from PIL import Image
        from fcn_nuclei.sources import synthesize_sample
        folder = Path(tempfile.mkdtemp()); (folder/'in').mkdir()
        side = arguments.sizes[0]
        for index in range(arguments.cli_images): Image.fromarray(synthesize_sample(index, side, side)[0]).save(folder/'in'/f'{index}.png')
        command = [sys.executable, '-c', 'import sys; from fcn_nuclei.cli import main; sys.exit(main())', 'predict', str(folder/'in'), '--model', arguments.model]
        seconds = {}
        for name, extra in (('estimated', []), ('given', ['--diameter', str(arguments.estimate_ratio)])):
            started = time.perf_counter()
            subprocess.run(command + ['--out', str(folder/name)] + extra, check=True, capture_output=True)
            seconds[name] = round(time.perf_counter() - started, 2)
        ratios[f'fcn-nuclei predict, {arguments.cli_images} images of {side}x{side}, start-up included'] = dict(**seconds, estimate_over_given=round(seconds['estimated'] / seconds['given'], 2))
    speedups = {row['size']: round(next(r['seconds_median'] for r in results if r['size'] == row['size'] and r['engine'] == 'keras') / row['seconds_median'], 2)
                for row in results if row['engine'] == 'onnx' and 'keras' in arguments.engines}
    print(json.dumps(dict(benchmark='predict_paths end to end', model=arguments.model if Path(arguments.model).is_file() else 'untrained skips (2 channels)',
                          diameter=arguments.diameter or 'estimated per image', cores=os.cpu_count(), cpu=platform.processor() or platform.machine(), date=time.strftime('%Y-%m-%d'), results=results, **({'onnx_speedup_over_keras': speedups} if speedups else {}),
                          **({'estimate_over_given': ratios} if ratios else {})), indent=2))
