"""Training-pipeline benchmark: crops per second from `make_dataset` with and without the invariance augmentations.

    python benchmarks/pipeline.py [--data PATH] [--batches 60] [--out results/pipeline.json]

The training images are prepared as `train` prepares them (channel rule, stretch, rescaled to the median nucleus
diameter), then three pipelines are read for the same number of batches of 8 crops of 256x256 with contour targets:
the geometric augmentation alone (flips, rotations, brightness jitter: the pipeline before the invariance recipe),
with the random zoom, and with zoom and the intensity augmentations (the default recipe). Each is read twice and the
faster pass counts (the first warms caches). Ratios are against the geometric-only pipeline measured in the same run;
one training step of the skips model on a batch is timed too, so the table says whether the pipeline can keep up.
PATH defaults to $FCN_NUCLEI_DATA, else the embedded synthetic set (`fcn_nuclei.data.resolve_data`).
"""
import argparse, json, os, platform, time, warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import keras
import numpy as np
from fcn_nuclei import __version__
from fcn_nuclei.data import load_dsb, split_ids
from fcn_nuclei.pipeline import make_dataset
from fcn_nuclei.sources import resolve_data
from fcn_nuclei.models import build_fcn
from fcn_nuclei.normalize import Normalization, median_diameter, prepare_sample
from fcn_nuclei.train import LOSSES

def crops_per_second(samples, batches: int, **recipe) -> float:
    "Best of two passes over `batches` batches of 8 crops."
    best = 0.0
    for _ in range(2):
        dataset = make_dataset(samples, 'native', True, 256, 8, seed=0, crops_per_image=2, contours=True, **recipe).take(batches)
        started = time.perf_counter()
        count = sum(int(images.shape[0]) for images, _ in dataset)
        best = max(best, count / (time.perf_counter() - started))
    return best

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default=None, help="a DSB-layout folder, 'synthetic' or 'bbbc038'")
    parser.add_argument('--batches', type=int, default=60)
    parser.add_argument('--out', type=Path, default=None, help='also write the result as JSON here')
    arguments = parser.parse_args()
    data = resolve_data(arguments.data)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = load_dsb(data, progress=False)
    train_ids = set(split_ids(samples)[0])
    train_samples = [s for s in samples if s.id in train_ids]
    contract = Normalization(diameter=round(float(np.median([median_diameter(s.labels) for s in train_samples if s.labels.any()])), 2))
    prepared = [prepare_sample(s, contract) for s in train_samples]
    pipelines = {'geometric only (before the recipe)': {}, 'with zoom 0.67-1.5': dict(zoom=(0.67, 1.5)),
                 'with zoom and intensity (default recipe)': dict(zoom=(0.67, 1.5), intensity=True)}
    rates = {name: crops_per_second(prepared, arguments.batches, **recipe) for name, recipe in pipelines.items()}
    model = build_fcn('skips', outputs=2)
    model.compile(optimizer='adam', loss=LOSSES['bce_dice'])
    images, targets = next(iter(make_dataset(prepared, 'native', True, 256, 8, seed=0, contours=True)))
    model.train_on_batch(images, targets)  # compile and warm up
    started = time.perf_counter()
    for _ in range(5): model.train_on_batch(images, targets)
    step_rate = 5 * 8 / (time.perf_counter() - started)
    reference = rates['geometric only (before the recipe)']
    rows = [dict(pipeline=name, crops_per_second=round(rate, 1), ratio_to_before=round(rate / reference, 2), ratio_to_training=round(rate / step_rate, 1))
            for name, rate in rates.items()]
    result = dict(benchmark='training pipeline', data=str(data), training_images=len(prepared), batches=arguments.batches, batch_size=8, crop=256,
                  training_crops_per_second_float32=round(step_rate, 1), rows=rows, cores=os.cpu_count(), cpu=platform.processor() or platform.machine(),
                  keras=keras.__version__, fcn_nuclei=__version__, date=time.strftime('%Y-%m-%d %H:%M'))
    print(json.dumps(result, indent=2))
    if arguments.out: arguments.out.write_text(json.dumps(result, indent=2) + '\n')

if __name__ == '__main__': main()
