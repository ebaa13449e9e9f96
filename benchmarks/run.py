"""The tutorial's pipeline against the article's, side by side in one run on one machine.

    python benchmarks/run.py --data ../shared/dsb2018/stage1_train    # the real run (about an hour on 2 cores)
    python benchmarks/run.py --quick                                  # a small synthetic run (a few minutes)

Four comparisons, each on the same data:
1. data preparation: the article's loop (read every mask, resize it to 128x128, merge) against `load_dsb`;
2. training throughput of the article's model at 128x128, batch 16: the article's `model.fit` on NumPy arrays against
   `tf.data`, with XLA, bfloat16 mixed precision and thread settings tried; images/s, achieved GFLOP/s (counted
   from the model's layers) and the machine's dense matmul GFLOP/s measured in the same run;
3. time to quality: training seconds until the validation pixel IoU (whole validation images at native resolution,
   pooled, threshold 0.5) reaches the target, the article's protocol against the package's configuration, both capped
   at the same training budget;
4. inference: `benchmarks/predict.py` (end to end, a fresh process per size): ms per megapixel and peak memory.
Every training or inference measurement runs in a fresh child process so that thread settings, precision policies and
peak memory do not leak between them. Prints a JSON and a markdown table; `--out` keeps the JSON.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
repository = Path(__file__).resolve().parents[1]
ARTICLE_SIZE, ARTICLE_BATCH = 128, 16

# ---------------------------------------------------------------------------------------------- data preparation
def article_loader(data: Path, ids: list[str], size: int = ARTICLE_SIZE):
    "The article's loading loop, as printed: skimage imread and resize of the image and of every mask file, merged with np.maximum."
    import numpy as np
    from skimage.io import imread
    from skimage.transform import resize
    images = np.zeros((len(ids), size, size, 3), dtype=np.uint8)
    masks = np.zeros((len(ids), size, size, 1), dtype=bool)
    for n, id_ in enumerate(ids):
        path = data/id_
        image = imread(path/'images'/f'{id_}.png')[:, :, :3]
        images[n] = resize(image, (size, size), mode='constant', preserve_range=True)
        mask = np.zeros((size, size, 1), dtype=bool)
        for mask_file in next(os.walk(path/'masks'))[2]:
            mask_ = imread(path/'masks'/mask_file)
            mask_ = np.expand_dims(resize(mask_, (size, size), mode='constant', preserve_range=True), axis=-1)
            mask = np.maximum(mask, mask_)
        masks[n] = mask
    return images, masks

def bench_loading(data: Path, repeats: int, article_repeats: int) -> dict:
    "Time the article's loop and `load_dsb` on the same folder (medians)."
    from fcn_nuclei.data import list_dsb_samples, load_dsb
    ids = [folder.name for folder in list_dsb_samples(data)]
    article = []
    for _ in range(article_repeats):
        started = time.perf_counter(); article_loader(data, ids); article.append(time.perf_counter() - started)
    package = []
    for _ in range(repeats):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            samples = load_dsb(data, progress=False)
        package.append(time.perf_counter() - started)
    return dict(images=len(ids), nuclei=sum(s.nuclei for s in samples), article_seconds=_median(article), article_runs=_round(article),
                package_seconds=_median(package), package_runs=_round(package), speedup=round(statistics.median(article) / statistics.median(package), 1),
                target_speedup=20)

# ---------------------------------------------------------------------------------------------- throughput
THROUGHPUT_CONFIGS = {
    'article: model.fit(NumPy)': dict(feed='numpy'),
    'tf.data': dict(feed='tfdata'),
    'tf.data + XLA': dict(feed='tfdata', jit=True),
    'tf.data + bfloat16': dict(feed='tfdata', precision='mixed_bfloat16'),
    'tf.data + 1 inter-op thread': dict(feed='tfdata', threads=(0, 1)),
    'tf.data + bfloat16 + 1 inter-op thread': dict(feed='tfdata', precision='mixed_bfloat16', threads=(0, 1)),
}

def training_flops(model, height: int, width: int) -> dict:
    "Forward multiply-adds x2 of every convolution at one input size, and the usual x3 estimate for a training step."
    import keras, numpy as np
    convolutions = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    probe = keras.Model(model.inputs, [layer.output for layer in convolutions])
    outputs = probe(np.zeros((1, height, width, 3), np.float32))
    forward = 0
    for layer, output in zip(convolutions, outputs):
        positions = output.shape[1] * output.shape[2]
        if isinstance(layer, keras.layers.Conv2DTranspose): positions //= layer.strides[0] * layer.strides[1]
        forward += 2 * positions * int(np.prod(layer.kernel.shape))
    return dict(forward_gflop_per_image=round(forward / 1e9, 3), train_gflop_per_image=round(3 * forward / 1e9, 3))

def matmul_gflops(size: int = 2048, repeats: int = 5) -> dict:
    "Dense matmul GFLOP/s of this machine through TensorFlow (float32 and bfloat16), median of `repeats`."
    import tensorflow as tf
    result = {}
    for dtype in (tf.float32, tf.bfloat16):
        a, b = tf.random.uniform((size, size), dtype=tf.float32), tf.random.uniform((size, size), dtype=tf.float32)
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
        (a @ b).numpy()  # warm up
        times = []
        for _ in range(repeats):
            started = time.perf_counter(); (a @ b).numpy(); times.append(time.perf_counter() - started)
        result[dtype.name] = round(2 * size ** 3 / statistics.median(times) / 1e9, 1)
    return result

def throughput_child(arrays: str, config: dict, epochs: int) -> dict:
    "In a fresh process: train the article's model for 1 + `epochs` epochs on the arrays and time the epochs after the first."
    threads = config.get('threads')
    import tensorflow as tf
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0]); tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    import keras, numpy as np
    from fcn_nuclei.models import build_fcn
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(config.get('precision', 'float32'))
    stored = np.load(arrays)
    images, masks = stored['images'], stored['masks'].astype(np.float32)
    model = build_fcn('article')
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='binary_crossentropy', jit_compile=config.get('jit', False))
    times = []
    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None): self.started = time.perf_counter()
        def on_epoch_end(self, epoch, logs=None): times.append(time.perf_counter() - self.started)
    if config['feed'] == 'numpy':
        model.fit(images, masks, batch_size=ARTICLE_BATCH, epochs=1 + epochs, shuffle=True, verbose=0, callbacks=[EpochTimer()])
    else:
        dataset = (tf.data.Dataset.from_tensor_slices((images, masks)).cache().shuffle(len(images), seed=0, reshuffle_each_iteration=True)
                   .batch(ARTICLE_BATCH).prefetch(tf.data.AUTOTUNE))
        model.fit(dataset, epochs=1 + epochs, verbose=0, callbacks=[EpochTimer()])
    seconds = statistics.median(times[1:])
    return dict(images_per_second=round(len(images) / seconds, 2), epoch_seconds=_round(times[1:]), first_epoch_seconds=round(times[0], 2),
                images_per_epoch=len(images), **training_flops(model, ARTICLE_SIZE, ARTICLE_SIZE))

# ---------------------------------------------------------------------------------------------- time to quality
def validation_iou(model, samples, protocol: str) -> float:
    "Pixel IoU pooled over whole validation images at native resolution (threshold 0.5)."
    import numpy as np
    from fcn_nuclei.evaluate import article_probabilities
    from fcn_nuclei.models import predict_padded
    overlap = union = 0
    for sample in samples:
        probabilities = article_probabilities(model, sample.image) if protocol == 'article' else predict_padded(model, sample.image)
        predicted = probabilities[..., 0] > 0.5
        overlap += int((predicted & sample.mask).sum()); union += int((predicted | sample.mask).sum())
    return overlap / union if union else 1.0

def quality_child(data: str, pipeline: str, budget: float, target: float, max_epochs: int) -> dict:
    "In a fresh process: train one pipeline epoch by epoch; stop at `target` validation IoU or after `budget` training seconds."
    import keras, numpy as np
    from fcn_nuclei.data import load_dsb, split_ids
    from fcn_nuclei.pipeline import article_arrays, make_dataset
    from fcn_nuclei.models import build_fcn
    from fcn_nuclei.train import LOSSES, cosine_schedule
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = load_dsb(data, progress=False)
    train_ids, validation_ids = split_ids(samples, 0.2, 0)
    train_samples = [s for s in samples if s.id in set(train_ids)]
    validation_samples = [s for s in samples if s.id in set(validation_ids)]
    if pipeline == 'article':  # the article: its model and 128x128 arrays, model.fit on NumPy, BCE, constant Adam 1e-3, batch 16
        images, masks = article_arrays(train_samples)
        model = build_fcn('article')
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='binary_crossentropy')
        fit = lambda epoch: model.fit(images, masks, batch_size=ARTICLE_BATCH, epochs=epoch + 1, initial_epoch=epoch, shuffle=True, verbose=0)
        protocol, setting = 'article', "article model, 128x128 resize, model.fit on NumPy, BCE, Adam 1e-3, batch 16 (pixels scaled to 0-1 in the model)"
    else:  # the package: skip connections, native 256x256 crops with augmentation, BCE + Dice, cosine decay, batch 8 (its defaults)
        precision = pipeline.partition(':')[2] or 'float32'
        dataset = make_dataset(train_samples, 'native', True, 256, 8, 0)
        keras.mixed_precision.set_global_policy(precision)
        model = build_fcn('skips')
        schedule = keras.callbacks.LearningRateScheduler(cosine_schedule(1e-3, max_epochs))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSSES['bce_dice'])
        fit = lambda epoch: model.fit(dataset, epochs=epoch + 1, initial_epoch=epoch, verbose=0, callbacks=[schedule])
        protocol, setting = 'native', f"skips model, native 256x256 crops with augmentation, tf.data, BCE + Dice, Adam 1e-3 cosine over {max_epochs} epochs, batch 8, {precision}"
    trained, curve, reached = 0.0, [], None
    for epoch in range(max_epochs if pipeline != 'article' else 10_000):  # the article's constant rate: only the budget stops it
        started = time.perf_counter(); fit(epoch); trained += time.perf_counter() - started
        iou = validation_iou(model, validation_samples, protocol)
        curve.append(dict(epoch=epoch + 1, train_seconds=round(trained, 1), validation_iou=round(iou, 4)))
        print(json.dumps(curve[-1]), file=sys.stderr, flush=True)
        if iou >= target: reached = round(trained, 1); break
        if trained >= budget: break
    return dict(setting=setting, target_iou=target, budget_seconds=budget, seconds_to_target=reached, reached=reached is not None,
                best_iou=max(row['validation_iou'] for row in curve), epochs=len(curve), train_seconds=round(trained, 1),
                validation_images=len(validation_samples), curve=curve)

# ---------------------------------------------------------------------------------------------- helpers
def _median(values): return round(statistics.median(values), 2)
def _round(values): return [round(value, 2) for value in values]

def child(*arguments) -> dict:
    "Run this script in a fresh process with `arguments`; return the JSON it prints last."
    process = subprocess.run([sys.executable, __file__, *map(str, arguments)], capture_output=True, text=True)
    if process.returncode: sys.exit(f"child {arguments} failed:\n{process.stderr[-4000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])

def machine() -> dict:
    "Cores, CPU model and versions."
    import keras, numpy, tensorflow as tf
    import fcn_nuclei
    model = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name')), platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    memory = round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30, 1) if hasattr(os, 'sysconf') else None
    return dict(date=time.strftime('%Y-%m-%d %H:%M'), cores=os.cpu_count(), cpu=model, memory_gib=memory, python=platform.python_version(),
                tensorflow=tf.__version__, keras=keras.__version__, numpy=numpy.__version__, fcn_nuclei=fcn_nuclei.__version__)

def markdown(result: dict) -> str:
    "The result as markdown tables."
    lines = [f"Run {result['machine']['date']}: {result['machine']['cores']} cores ({result['machine']['cpu']}), {result['machine']['memory_gib']} GiB, "
             f"Python {result['machine']['python']}, TensorFlow {result['machine']['tensorflow']}, Keras {result['machine']['keras']}; data {result['data']}.", '']
    if 'loading' in result:
        row = result['loading']
        lines += ['| data preparation | seconds (median) | runs |', '|---|---|---|',
                  f"| article's loop (every mask resized to 128x128, merged) | {row['article_seconds']} | {row['article_runs']} |",
                  f"| `load_dsb` (native resolution, instance labels) | {row['package_seconds']} | {row['package_runs']} |",
                  f"| **speed-up** | **{row['speedup']}x** (target {row['target_speedup']}x) | {row['images']} images, {row['nuclei']} nuclei |", '']
    if 'throughput' in result:
        peak = result['throughput']['matmul_gflops']
        lines += [f"Training the article's model, 128x128, batch {ARTICLE_BATCH}, {result['throughput']['train_gflop_per_image']} GFLOP per image per step; "
                  f"dense matmul on this machine: {peak['float32']} GFLOP/s float32, {peak['bfloat16']} GFLOP/s bfloat16.", '',
                  '| pipeline | images/s (median epoch) | x article | GFLOP/s | % of matmul peak (same precision) |', '|---|---|---|---|---|']
        for name, row in result['throughput']['configs'].items():
            lines.append(f"| {name} | {row['images_per_second']} | {row['speedup']} | {row['gflops']} | {row['percent_of_matmul']} |")
        lines.append('')
    if 'quality' in result:
        lines += [f"| time to validation pixel IoU {result['quality']['target_iou']} (budget {result['quality']['budget_seconds']} s of training) | seconds | epochs | best IoU |", '|---|---|---|---|']
        for name, row in result['quality']['pipelines'].items():
            lines.append(f"| {name}: {row['setting']} | {row['seconds_to_target'] if row['reached'] else 'not reached'} | {row['epochs']} | {row['best_iou']} |")
        lines.append('')
    if 'inference' in result:
        lines += ['| inference, end to end | seconds (median) | ms per megapixel | peak memory MB |', '|---|---|---|---|']
        for row in result['inference']['results']:
            lines.append(f"| {row['size']} | {row['seconds_median']} | {row['ms_per_megapixel']} | {row['peak_rss_mb']:.0f} |")
        lines.append('')
    return '\n'.join(lines)

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=None, help='DSB-layout folder (default: $FCN_NUCLEI_DATA, else ../shared/dsb2018/stage1_train, else synthetic)')
    parser.add_argument('--quick', action='store_true', help='a small synthetic run: 40 images, short budgets')
    parser.add_argument('--sections', nargs='+', default=['loading', 'throughput', 'quality', 'inference'], choices=['loading', 'throughput', 'quality', 'inference'])
    parser.add_argument('--repeats', type=int, default=3, help='repeats of the package loader and inference timings, timed epochs of throughput')
    parser.add_argument('--article-repeats', type=int, default=1, help="repeats of the article's loader (226 s each on the real set)")
    parser.add_argument('--throughput-images', type=int, default=320, help='images per throughput epoch')
    parser.add_argument('--budget', type=float, default=600, help='training seconds allowed to each pipeline in the time-to-quality race')
    parser.add_argument('--target', type=float, default=0.80, help='validation pixel IoU to reach')
    parser.add_argument('--max-epochs', type=int, default=40, help="the package's epochs (and cosine schedule length) in the time-to-quality race; the article's constant rate runs until the budget")
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 1024, 4096], help='inference image sides')
    parser.add_argument('--out', type=Path, default=None, help='write the JSON here too')
    parser.add_argument('--child', nargs='+', default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        kind, *rest = arguments.child
        if kind == 'throughput': result = throughput_child(rest[0], json.loads(rest[1]), int(rest[2]))
        elif kind == 'quality': result = quality_child(rest[0], rest[1], float(rest[2]), float(rest[3]), int(rest[4]))
        elif kind == 'matmul': result = matmul_gflops()
        print(json.dumps(result)); return

    from fcn_nuclei.sources import write_synthetic_dataset
    data = arguments.data
    if data is None and not arguments.quick:
        for candidate in (os.environ.get('FCN_NUCLEI_DATA'), repository.parent/'shared/dsb2018/stage1_train'):
            if candidate and Path(candidate).is_dir(): data = Path(candidate); break
    if data is None:
        data = write_synthetic_dataset(Path(tempfile.mkdtemp())/'synthetic', images=40)
    if arguments.quick:
        arguments.budget, arguments.max_epochs, arguments.repeats = min(arguments.budget, 60), min(arguments.max_epochs, 4), min(arguments.repeats, 2)
        arguments.throughput_images, arguments.sizes = min(arguments.throughput_images, 48), [size for size in arguments.sizes if size <= 1024]
    result = dict(data=str(data), machine=machine(), settings={key: (str(value) if isinstance(value, Path) else value) for key, value in vars(arguments).items() if key != 'child'})
    log = lambda name: print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)

    if 'loading' in arguments.sections:
        log('data preparation'); result['loading'] = bench_loading(data, arguments.repeats, arguments.article_repeats)
    if 'throughput' in arguments.sections:
        log('throughput')
        import numpy as np
        from fcn_nuclei.data import list_dsb_samples
        folders = list_dsb_samples(data)[:arguments.throughput_images]
        images, masks = article_loader(data, [folder.name for folder in folders])
        arrays = Path(tempfile.mkdtemp())/'arrays.npz'; np.savez(arrays, images=images, masks=masks)
        peak = child('--child', 'matmul')
        configs = {}
        for name, config in THROUGHPUT_CONFIGS.items():
            log(f'  {name}'); configs[name] = child('--child', 'throughput', arrays, json.dumps(config), arguments.repeats)
        reference = configs['article: model.fit(NumPy)']['images_per_second']
        gflop = configs['tf.data']['train_gflop_per_image']
        for row in configs.values():
            row['speedup'] = round(row['images_per_second'] / reference, 2)
            row['gflops'] = round(row['images_per_second'] * gflop, 1)
        for name, row in configs.items():
            row['percent_of_matmul'] = round(100 * row['gflops'] / peak['bfloat16' if 'bfloat16' in name else 'float32'], 1)
        best = max(configs, key=lambda name: configs[name]['images_per_second'])
        result['throughput'] = dict(matmul_gflops=peak, train_gflop_per_image=gflop, configs=configs, best=best,
                                    best_speedup=configs[best]['speedup'], target_speedup=1.5)
    if 'quality' in arguments.sections:
        pipelines = {}
        for pipeline in ('article', 'package', 'package:mixed_bfloat16'):
            log(f'time to quality: {pipeline}')
            pipelines[pipeline] = child('--child', 'quality', data, pipeline, arguments.budget, arguments.target, arguments.max_epochs)
        result['quality'] = dict(target_iou=arguments.target, budget_seconds=arguments.budget, pipelines=pipelines)
    if 'inference' in arguments.sections:
        log('inference')
        process = subprocess.run([sys.executable, str(repository/'benchmarks'/'predict.py'), '--repeats', str(arguments.repeats), '--sizes', *map(str, arguments.sizes)],
                                 capture_output=True, text=True)
        if process.returncode: sys.exit(f"inference benchmark failed:\n{process.stderr[-4000:]}")
        result['inference'] = json.loads(process.stdout)
    text = json.dumps(result, indent=2)
    if arguments.out:
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = arguments.out.with_name(f'.{arguments.out.name}.partial'); temporary.write_text(text + '\n'); os.replace(temporary, arguments.out)
    print(text); print(); print(markdown(result))

if __name__ == '__main__':
    main()
