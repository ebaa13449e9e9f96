"""The decoders compared: the same short training run for every variant and seed, on the same split.

    python experiments/decoders.py --data ../shared/dsb2018/stage1_train [--epochs 20] [--crop 128] [--seeds 0 1]

The train/validation split is fixed (seed 0), so every run scores the same validation images; each seed sets the
weights' initialisation and the crops, and within a seed every decoder trains on the same crops. Writes
results/decoders.json (per decoder: parameters, forward time for a 256x256 image and training time, means over the
seeds; validation pixel IoU per seed, its mean and its spread, half the range (max - min) / 2, so mean +- spread spans
the seeds; with the command, commit, data and machine) and nbs/images/decoder_<variant>.png (validation images, true
mask, the first seed's prediction), which notebooks 01-03 show. A short run on purpose: it shows what each decoder can
draw, not how good a fully trained model gets (that is the training and evaluation notebooks' job).
"""
import argparse, json, os, platform, statistics, subprocess, sys, time, warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from fcn_nuclei import __version__
from fcn_nuclei.data import load_dsb, split_ids
from fcn_nuclei.files import write_json
from fcn_nuclei.pipeline import make_dataset, validation_crops
from fcn_nuclei.sources import resolve_data
from fcn_nuclei.models import build_fcn

VARIANTS = ('naive', 'naive_x16', 'fcn16s', 'fcn8s', 'stepwise', 'article', 'skips')  # in the lesson's order
repository = Path(__file__).resolve().parents[1]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--data', default=None, help="dataset folder, 'synthetic' or 'bbbc038' (default: $FCN_NUCLEI_DATA, else synthetic)")
parser.add_argument('--epochs', type=int, default=20)
parser.add_argument('--crop', type=int, default=128)
parser.add_argument('--batch-size', type=int, default=16)
parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='seeds, one run of every decoder each (default: 0 1)')
parser.add_argument('--out', type=Path, default=repository/'results'/'decoders.json')
parser.add_argument('--figures', type=Path, default=repository/'nbs'/'images')
arguments = parser.parse_args()

data = resolve_data(arguments.data)
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    samples = load_dsb(data, progress=False)
train_ids, validation_ids = split_ids(samples, seed=0)
train = [s for s in samples if s.id in set(train_ids)]
validation = [s for s in samples if s.id in set(validation_ids)]
validation_images, validation_masks = validation_crops(validation, 256)

# three fixed validation crops for the figure: the densest grey, a colour one, and a sparse grey one
nuclei_pixels = validation_masks.reshape(len(validation_masks), -1).mean(axis=1)
is_grey = (validation_images[..., 0] == validation_images[..., 2]).reshape(len(validation_images), -1).all(axis=1)
order = np.argsort(-nuclei_pixels)
shown = [int(next(i for i in order if is_grey[i])), int(next((i for i in order if not is_grey[i]), order[1])), int(next(i for i in order[len(order) // 3:] if is_grey[i]))]

def pixel_iou(probabilities, masks):
    "Pixel IoU of the thresholded prediction, over all validation pixels."
    predicted = probabilities > 0.5
    truth = masks > 0.5
    return float((predicted & truth).sum() / max((predicted | truth).sum(), 1))

def forward_ms(model, repeats=10):
    "Median time of one 256x256 forward pass, in milliseconds."
    image = np.zeros((1, 256, 256, 3), np.float32)
    model(image, training=False)
    times = []
    for _ in range(repeats):
        started = time.perf_counter(); model(image, training=False); times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)

def draw(variant, seed, probabilities, iou):
    "Save the shown validation crops: image, true mask and this run's probability."
    figure, axes = plt.subplots(len(shown), 3, figsize=(7.5, 2.5 * len(shown)))
    for row, index in enumerate(shown):
        for column, (panel, title) in enumerate([(validation_images[index].astype(np.uint8), 'image'), (validation_masks[index, ..., 0], 'true mask'),
                                                  (probabilities[index, ..., 0], f'{variant}: probability')]):
            axes[row, column].imshow(panel, cmap='magma' if column else None, vmin=0, vmax=1 if column else None)
            axes[row, column].set_axis_off()
            if row == 0: axes[row, column].set_title(title, fontsize=10)
    figure.suptitle(f'{variant} decoder, validation pixel IoU {iou:.3f} ({arguments.epochs} epochs of {arguments.crop}px crops, seed {seed})', fontsize=10)
    figure.tight_layout()
    arguments.figures.mkdir(parents=True, exist_ok=True)
    figure.savefig(arguments.figures/f'decoder_{variant}.png', dpi=60)
    plt.close(figure)

runs, started_all = {variant: [] for variant in VARIANTS}, time.perf_counter()
for seed in arguments.seeds:
    for variant in VARIANTS:
        keras.utils.set_random_seed(seed)
        train_data = make_dataset(train, 'native', crop_size=arguments.crop, batch_size=arguments.batch_size, seed=seed)
        model = build_fcn(variant)
        model.compile(keras.optimizers.Adam(1e-3), loss='binary_crossentropy')
        started = time.perf_counter()
        history = model.fit(train_data, epochs=arguments.epochs, verbose=0)
        seconds = time.perf_counter() - started
        probabilities = model.predict(validation_images, batch_size=8, verbose=0)
        run = dict(seed=seed, parameters=int(model.count_params()), forward_ms_256=forward_ms(model), train_seconds=seconds,
                   final_train_loss=float(history.history['loss'][-1]), validation_iou=pixel_iou(probabilities, validation_masks))
        runs[variant].append(run)
        print(variant, json.dumps(run), flush=True)
        if seed == arguments.seeds[0]: draw(variant, seed, probabilities, run['validation_iou'])

def summary(runs):
    "One decoder's runs: means over the seeds, and the validation IoU per seed with its spread (half the range)."
    ious = [run['validation_iou'] for run in runs]
    return dict(parameters=runs[0]['parameters'], forward_ms_256=round(statistics.mean(run['forward_ms_256'] for run in runs), 1),
                train_seconds=round(statistics.mean(run['train_seconds'] for run in runs), 1),
                final_train_loss=round(statistics.mean(run['final_train_loss'] for run in runs), 4),
                validation_iou=round(statistics.mean(ious), 4), validation_iou_spread=round((max(ious) - min(ious)) / 2, 4),
                validation_iou_seeds=[round(iou, 4) for iou in ious])

try: commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=repository, capture_output=True, text=True).stdout.strip()
except OSError: commit = ''
report = dict(
    command='python experiments/decoders.py ' + ' '.join(sys.argv[1:]), commit=commit, fcn_nuclei=__version__, keras=keras.__version__,
    data=Path(data).name, images=len(samples), train_images=len(train), validation_images=len(validation), validation_crops=len(validation_images),
    budget=f"{arguments.epochs} epochs x {len(train)} random {arguments.crop}x{arguments.crop} crops, batch {arguments.batch_size}, Adam 1e-3, BCE",
    seeds=arguments.seeds, split_seed=0, figures_seed=arguments.seeds[0],
    spread='validation_iou_spread is half the range over the seeds, (max - min) / 2: validation_iou +- spread spans every seed; other numbers are means over the seeds',
    wall_seconds=round(time.perf_counter() - started_all, 1), machine=f"{os.cpu_count()} CPU cores ({platform.machine()})", date=time.strftime('%Y-%m-%d'),
    variants={variant: summary(runs[variant]) for variant in VARIANTS})
arguments.out.parent.mkdir(parents=True, exist_ok=True)
write_json(arguments.out, report)
print(json.dumps(report, indent=2))
