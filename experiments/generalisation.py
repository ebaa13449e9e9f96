"""Robustness of a trained model to the changes a new microscope brings: nucleus size, brightness, gamma, bit depth, channels.

Scores the model's validation images (the ids stored in its config.json) unchanged and transformed, each with the
automatic diameter, and writes one JSON file that `nbs/06_generalisation.ipynb` reads. With --loko, trains one model per
image kind without that kind (a short, equal budget) and scores each on the kind it never saw.

    python experiments/generalisation.py results/model_split/model.keras --data ../shared/dsb2018/stage1_train --out results/generalisation.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np
from PIL import Image

from fcn_nuclei.data import load_dsb, split_ids
from fcn_nuclei.files import write_atomic
from fcn_nuclei.evaluate import object_scores
from fcn_nuclei.postprocess import probabilities_to_labels, scaled_labels
from fcn_nuclei.models import load_model
from fcn_nuclei.predict import predict_probabilities
from fcn_nuclei.normalize import median_diameter, normalize_image, model_normalization, resize_image, resize_labels, scaled_size
import fcn_nuclei.plan
from fcn_nuclei.plan import predict_native


def _scaled(image, labels, factor):
    "The image as another magnification would show it (bilinear, antialiased when shrinking: fixed here, whatever the package's own resizing does), labels by nearest neighbour."
    size = scaled_size(*image.shape[:2], factor)
    resized = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(size[::-1], Image.BILINEAR)) for c in range(image.shape[-1])], axis=-1)
    return resized, resize_labels(labels, *size)

def _gamma(image, gamma): return np.clip(255 * (image / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)

def _grey(image): return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())

def _in_blue(image):
    coloured = np.zeros_like(image); coloured[..., 2] = image[..., 0]
    return coloured

def _half_dimmed(image, labels, factor=10.0):
    "Issue 38's synthetic heterogeneous-brightness test: every second nucleus (even label ids, a fixed choice) with 10x less contrast, labels unchanged: those nuclei's pixels moved 90% of the way to the image's median background colour (the median of the pixels outside every nucleus), x -> b + (x - b) / 10. On a dark background (fluorescence) this is x0.1 plus 0.9 b, b a few grey levels (median 5 on the validation images): plain x0.1 would put 59% of them below their own background, dark holes rather than dim nuclei. On a bright one (brightfield, stained tissue) it is 10x less contrast."
    inside, dimmed = labels > 0, (labels > 0) & (labels % 2 == 0)
    if not dimmed.any() or inside.all(): return image, labels
    background = np.median(image[~inside].reshape(-1, image.shape[-1]), axis=0)
    changed = image.astype(np.float64)
    changed[dimmed] = background + (changed[dimmed] - background) / factor
    return np.clip(changed + 0.5, 0, 255).astype(np.uint8), labels

# name -> (transform of (image, labels) or None when it does not apply to that image)
CONDITIONS = {
    'unchanged': lambda image, labels: (image, labels),
    'unchanged, true diameter given': lambda image, labels: (image, labels),
    'size x0.5': lambda image, labels: _scaled(image, labels, 0.5),
    'size x2': lambda image, labels: _scaled(image, labels, 2.0),
    'size x3': lambda image, labels: _scaled(image, labels, 3.0),
    'brightness x0.25': lambda image, labels: ((image * 0.25 + 0.5).astype(np.uint8), labels),
    'gamma 0.5': lambda image, labels: (_gamma(image, 0.5), labels),
    'gamma 2': lambda image, labels: (_gamma(image, 2.0), labels),
    '16-bit, 12 bits used': lambda image, labels: (image.astype(np.uint16) * 16, labels),
    'grey in the blue channel': lambda image, labels: (_in_blue(image), labels) if _grey(image) else None,
    'half the nuclei dimmed 10x': _half_dimmed,  # issue 38: every second nucleus 90% of the way to the median background (dark background: about x0.1), i.e. 10x less contrast
}

def _even(array): return array[:array.shape[0] // 2 * 2, :array.shape[1] // 2 * 2]

def _majority_half(labels):
    "Labels at half size, centred like the shrunk image: each pixel the label covering most of its 2x2 block (ties to a nucleus, not the background). Nearest neighbour instead takes one pixel of each block, a quarter of a pixel off the image's centres."
    labels = _even(labels); height, width = labels.shape
    blocks = labels.reshape(height // 2, 2, width // 2, 2).transpose(0, 2, 1, 3).reshape(height // 2, width // 2, 4).astype(np.int64)
    votes = (blocks[..., :, None] == blocks[..., None, :]).sum(-1) * (int(blocks.max()) + 1) + blocks
    return np.take_along_axis(blocks, votes.argmax(-1)[..., None], -1)[..., 0].astype(labels.dtype)

# diagnostics, not in the default table: what each remaining loss is made of
DIAGNOSTICS = {
    'size x0.5, labels by majority': lambda image, labels: (_scaled(_even(image), _even(labels), 0.5)[0], _majority_half(labels)),  # the same images, the truth shrunk centred
    'size x0.5, true diameter given': CONDITIONS['size x0.5'],  # the x0.5 loss without any error of the diameter estimate
    'gamma 2, undone': lambda image, labels: (_gamma(_gamma(image, 2.0), 0.5), labels),  # the curve taken back off: only the 8-bit levels it merged stay lost
    'gamma 0.5, undone': lambda image, labels: (_gamma(_gamma(image, 0.5), 2.0), labels),
}

TTA = False  # --tta: average the 8 flips and rotations, as `fcn-nuclei predict --tta` does
CURVE = 1.0  # --curve: a fixed gamma applied to the network's input after the contract's stretch (1: none)
ENSEMBLE = (1.0,)  # --ensemble: probabilities averaged over the network's input bent by each of these curves (grey inputs only)

CURVE_RGB = False  # --curve-rgb: stained tissue (channel rule rgb) bent too

def curved_intensity(apply_intensity):
    "`apply_intensity` (the contract's reduction and stretch, as `plan_input` and `InputPlan.prepare` call it), then the fixed curve x ** CURVE on the stretched 0..255 image, for every channel rule but `rgb` unless `--curve-rgb`: the estimate's window and the network's input alike."
    def curved(image, rule, bounds, source='image'):
        prepared = apply_intensity(image, rule, bounds, source)
        return prepared if CURVE == 1.0 or (rule == 'rgb' and not CURVE_RGB) else _gamma(prepared, CURVE)
    return curved

fcn_nuclei.plan.apply_intensity = curved_intensity(fcn_nuclei.plan.apply_intensity)  # the identity while CURVE is 1

def ensemble_probabilities(model, prepared):
    "Probabilities of a prepared image, averaged over the curves of `ENSEMBLE` when it is grey (stained tissue keeps its colours: one pass)."
    curves = ENSEMBLE if _grey(prepared) else (1.0,)
    return np.mean([predict_probabilities(model, prepared if curve == 1.0 else _gamma(prepared, curve), tta=TTA) for curve in curves], axis=0)

def score(model, normalization, setting, image, labels, source, diameter=None, keep=None):
    "DSB score and diameter estimate of one (transformed) image, predicted as `fcn-nuclei predict` does (tiled when large); `keep` (a dict) receives the predicted labels under 'labels'."
    probabilities, info = predict_native(model, image, normalization, lambda prepared: ensemble_probabilities(model, prepared), diameter=diameter, source=source)
    predicted = scaled_labels(probabilities, setting, info['scale'])
    if keep is not None: keep['labels'] = predicted
    return dict(dsb=object_scores(labels, predicted)['dsb'], diameter=info['diameter'], true_diameter=median_diameter(labels))

class Otsu:
    "A training-free baseline: the contract's channel rule and stretch, Otsu's threshold (dark nuclei on bright tissue inverted), the same watershed."
    def __call__(self, image, source):
        from skimage.filters import threshold_otsu
        prepared, rule = normalize_image(image, source=source)
        grey = prepared.mean(axis=-1)
        if rule == 'rgb': grey = 255 - grey
        foreground = grey > threshold_otsu(grey) if grey.max() > grey.min() else np.zeros(grey.shape, bool)
        return foreground.astype(np.float32)[..., None]

def score_otsu(image, labels, source, setting):
    predicted = probabilities_to_labels(Otsu()(image, source), **setting)
    return dict(dsb=object_scores(labels, predicted)['dsb'], diameter=None, true_diameter=median_diameter(labels))

def robustness(model_path: Path, samples, conditions, limit=None, progress=True) -> dict:
    "Mean DSB per condition over the model's validation images, with per-image rows ('otsu': the training-free baseline on the validation split of seed 0)."
    if str(model_path) == 'otsu':
        model, normalization, config = None, None, dict(validation_fraction=0.2, seed=0)
        setting = dict(method='watershed', threshold=0.5, min_size=8, min_distance=5)
    else:
        model, normalization = load_model(model_path), model_normalization(model_path)
        config = json.loads((model_path.parent/'config.json').read_text())
        setting = json.loads((model_path.parent/'postprocess.json').read_text())
    validation_ids = set(config.get('validation_ids') or split_ids(samples, config['validation_fraction'], config['seed'])[1])
    chosen = [s for s in samples if s.id in validation_ids][:limit]
    rows, table, native_predictions = [], [], {}
    for name in conditions:
        started, scores = time.perf_counter(), []
        for sample in chosen:
            changed = {**CONDITIONS, **DIAGNOSTICS}[name](sample.image, sample.labels)
            if changed is None: continue
            given = median_diameter(changed[1]) if name.endswith('diameter given') and normalization and normalization.diameter else None
            keep = {}
            result = score_otsu(*changed, sample.id, setting) if model is None else score(model, normalization, setting, *changed, sample.id, diameter=given, keep=keep)
            if name == 'unchanged' and keep: native_predictions[sample.id] = keep['labels']
            if name.startswith('size') and sample.id in native_predictions:  # the unchanged prediction, resized like the truth: what the metric allows at this size
                shrunk = _majority_half(native_predictions[sample.id]) if 'majority' in name else resize_labels(native_predictions[sample.id], *changed[1].shape)
                result['dsb_unchanged_prediction_resized'] = object_scores(changed[1], shrunk)['dsb']
            rows.append(dict(condition=name, id=sample.id, kind=sample.kind, **result)); scores.append(result)
        subset = [r['id'] for r in rows if r['condition'] == name]
        unchanged = [r['dsb'] for r in rows if r['condition'] == 'unchanged' and r['id'] in set(subset)]
        ratios = [s['diameter'] / s['true_diameter'] for s in scores if s['diameter'] and np.isfinite(s['true_diameter'])]
        table.append(dict(condition=name, images=len(scores), dsb=float(np.mean([s['dsb'] for s in scores])),
                          dsb_unchanged_same_images=float(np.mean(unchanged)) if unchanged else None,
                          dsb_unchanged_prediction_resized=float(np.mean([s['dsb_unchanged_prediction_resized'] for s in scores])) if scores and 'dsb_unchanged_prediction_resized' in scores[0] else None,
                          diameter_ratio_median=float(np.median(ratios)) if ratios else None,
                          diameter_within_25_percent=float(np.mean([abs(np.log(r)) < np.log(1.25) for r in ratios])) if ratios else None,
                          seconds=round(time.perf_counter() - started, 1)))
        if progress: print(json.dumps(table[-1]), flush=True)
    return dict(model=str(model_path), normalization=normalization.to_config() if normalization else None, postprocessing=setting,
                images=len(chosen), table=table, rows=rows)

def kind_groups(samples, minimum: int = 20) -> dict[str, str]:
    "Image id -> its kind (`Sample.kind`), kinds of fewer than `minimum` images pooled as 'other grey' / 'other colour'."
    counts = {}
    for sample in samples: counts[sample.kind] = counts.get(sample.kind, 0) + 1
    return {s.id: s.kind if counts[s.kind] >= minimum else f"other {s.kind.split()[0]}" for s in samples}

def leave_one_kind_out(samples, epochs: int, crops_per_image: int, seed: int = 0) -> dict:
    "For every kind: a model trained without it scores that kind's validation images; a model trained on every kind, same budget, scores them too."
    import tempfile
    from fcn_nuclei.train import train
    train_ids, validation_ids = split_ids(samples, 0.2, seed)
    groups = kind_groups(samples)
    kinds = sorted(set(groups.values()), key=lambda kind: -list(groups.values()).count(kind))
    budget = dict(epochs=epochs, crops_per_image=crops_per_image, precision='mixed_bfloat16', seed=seed, verbose=0, validation_every=epochs)
    setting = dict(method='watershed', threshold=0.5, min_size=8, min_distance=5)
    by_id = {s.id: s for s in samples}
    def scores(model_path, kind):
        model, normalization = load_model(model_path), model_normalization(model_path)
        chosen = [by_id[i] for i in validation_ids if groups[i] == kind]
        return float(np.mean([score(model, normalization, setting, s.image, s.labels, s.id)['dsb'] for s in chosen])), len(chosen)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        train(samples=samples, out=Path(folder)/'all', split=(train_ids, validation_ids), **budget)
        reference_seconds = time.perf_counter() - started
        for kind in kinds:
            started = time.perf_counter()
            kept_train = [i for i in train_ids if groups[i] != kind]
            kept_validation = [i for i in validation_ids if groups[i] != kind]
            train(samples=samples, out=Path(folder)/kind.replace(' ', '_'), split=(kept_train, kept_validation), **budget)
            unseen, images = scores(Path(folder)/kind.replace(' ', '_')/'model.keras', kind)
            seen, _ = scores(Path(folder)/'all'/'model.keras', kind)
            rows.append(dict(kind=kind, validation_images=images, training_images_of_kind=sum(groups[i] == kind for i in train_ids),
                             dsb_trained_without=unseen, dsb_trained_with=seen, train_seconds=round(time.perf_counter() - started, 1)))
            print(json.dumps(rows[-1]), flush=True)
    return dict(budget=f"{epochs} epochs x {crops_per_image} random 256x256 crop(s) per training image, bfloat16, the default recipe; post-processing: watershed, min_distance 5 (untuned, the same for every row)",
                reference_train_seconds=round(reference_seconds, 1), rows=rows)

def failure_figure(legacy_path: Path, model_path: Path, samples, out: Path):
    "Two failures of a model without an input contract, and the same images through the contract: nuclei three times larger, and dim fluorescence in one colour channel."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from fcn_nuclei.evaluate import PREDICTED_COLOUR, TRUE_COLOUR, outline_overlay
    config = json.loads((model_path.parent/'config.json').read_text())
    validation = [s for s in samples if s.id in set(config['validation_ids'])]
    # a typical fluorescence field: grey, the most common size, many nuclei; chosen by rule, not by id
    grey = sorted((s for s in validation if s.kind == 'grey 256x256' and s.nuclei >= 20), key=lambda s: s.nuclei)
    sample = grey[len(grey) // 2]
    large = _scaled(sample.image, sample.labels, 3.0)
    green = np.zeros_like(sample.image); green[..., 1] = _gamma(sample.image, 2.0)[..., 0]
    cases = [('nuclei 3x larger', *large), ('dim, green channel only (gamma 2)', green, sample.labels)]
    models = [(path, load_model(path), model_normalization(path), json.loads((path.parent/'postprocess.json').read_text())) for path in (legacy_path, model_path)]
    figure, axes = plt.subplots(2, 3, figsize=(12, 10.5))
    results = []
    for row, (title, image, labels) in zip(axes, cases):
        shown = image if image.dtype == np.uint8 else (image / image.max() * 255).astype(np.uint8)
        row[0].imshow(shown); row[0].set_title(f"{title}\n{labels.max()} nuclei", fontsize=10)
        # outlines on the image in grey, brightened (a green image would hide green outlines), and wide enough to survive the
        # figure's scale: one outline pixel per image pixel that a figure pixel shows
        backdrop = np.repeat(np.clip(shown.max(axis=-1, keepdims=True).astype(np.float32) * (200.0 / max(1, int(shown.max()))), 0, 255).astype(np.uint8), 3, axis=-1)
        width = max(1, int(np.ceil(max(shown.shape[:2]) / (4.0 * 72))) + 1)
        for axis, (path, model, normalization, setting), name in zip(row[1:], models, ('without the contract', 'with the contract')):
            probabilities, info = predict_native(model, image, normalization, lambda prepared: predict_probabilities(model, prepared))
            predicted = scaled_labels(probabilities, setting, info['scale'])
            dsb = object_scores(labels, predicted)['dsb']
            axis.imshow(outline_overlay(backdrop, labels, predicted, width))
            estimate = f", diameter {info['diameter']:.0f} px (true {median_diameter(labels):.0f})" if info['diameter'] else ''
            axis.set_title(f"{name}\n{predicted.max()} found, DSB {dsb:.2f}{estimate}", fontsize=10)
            results.append(dict(case=title, model=name, dsb=dsb, found=int(predicted.max()), true=int(labels.max()), diameter=info['diameter']))
    for axis in axes.ravel(): axis.set_axis_off()
    figure.suptitle(f"validation image {sample.id[:8]}, changed two ways; outlines drawn on the image in grey", fontsize=11)
    figure.legend(handles=[Patch(color=TRUE_COLOUR, label='true nuclei'), Patch(color=PREDICTED_COLOUR, label='predicted nuclei')],
                  loc='lower center', ncol=2, fontsize=10, frameon=False)
    figure.tight_layout(rect=(0, 0.03, 1, 0.95), h_pad=3.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=72)
    return dict(image=sample.id, figure=str(out), cases=results)

RECIPES = {
    'full recipe': {},
    'no intensity augmentation': dict(intensity=False),
    'no zoom augmentation': dict(zoom=(1.0, 1.0)),
}

def recipe_ablation(samples, epochs: int, crops_per_image: int, limit: int, conditions: list[str], seed: int = 0) -> dict:
    "Train the default recipe and each variant without one of its parts (same short budget); score each on the first `limit` validation images under `conditions`."
    import tempfile
    from fcn_nuclei.train import train
    setting = dict(method='watershed', threshold=0.5, min_size=8, min_distance=5)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for name, change in RECIPES.items():
            out = Path(folder)/f'run{len(runs)}'
            metrics = train(samples=samples, out=out, epochs=epochs, crops_per_image=crops_per_image, precision='mixed_bfloat16', seed=seed,
                            verbose=0, validation_every=epochs, **change)
            (out/'postprocess.json').write_text(json.dumps(setting))
            result = robustness(out/'model.keras', samples, conditions, limit, progress=False)
            runs.append(dict(recipe=name, train_seconds=metrics['train_seconds'], validation_crop_iou=metrics['validation_iou'],
                             **{row['condition']: row['dsb'] for row in result['table']}))
            print(json.dumps(runs[-1]), flush=True)
    return dict(budget=f"{epochs} epochs x {crops_per_image} random 256x256 crop(s) per training image, bfloat16, seed {seed}; scored on the first {limit} validation images; post-processing: watershed, min_distance 5 (untuned, the same for every row)",
                runs=runs)

def sampling_phase(samples, validation_ids) -> dict:
    "What the x0.5 truth allows: perfect labels shrunk centred (2x2 majority, like the shrunk image) scored against the same labels shrunk by nearest neighbour (the robustness table's truth)."
    scores = [object_scores(resize_labels(_even(s.labels), s.labels.shape[0] // 2, s.labels.shape[1] // 2), _majority_half(s.labels))['dsb']
              for s in samples if s.id in validation_ids]
    return dict(images=len(scores), dsb_perfect_centred_against_nearest=float(np.mean(scores)))

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', type=Path, nargs='*', help='.keras models with config.json and postprocess.json beside them')
    parser.add_argument('--data', required=True, help='the DSB training set (the models\' validation ids are read from it)')
    parser.add_argument('--out', type=Path, required=True, help='JSON file to write')
    parser.add_argument('--conditions', nargs='+', default=list(CONDITIONS), choices=list(CONDITIONS) + list(DIAGNOSTICS), help='conditions to score (default: the robustness table); diagnostics: ' + '; '.join(DIAGNOSTICS))
    parser.add_argument('--tta', action='store_true', help='robustness: predict with test-time augmentation (the 8 flips and rotations)')
    parser.add_argument('--limit', type=int, default=None, help='score only the first N validation images (a quick look)')
    parser.add_argument('--curve', type=float, default=1.0, help='robustness: a fixed gamma on the network input after the stretch, not for stained tissue (default 1: none)')
    parser.add_argument('--curve-rgb', action='store_true', help='--curve: stained tissue (channel rule rgb) too')
    parser.add_argument('--ensemble', type=float, nargs='+', default=[1.0], help='robustness: average the probabilities of the network input bent by each of these curves, grey inputs only (default 1: one pass)')
    parser.add_argument('--figure', type=Path, default=None, help='instead: draw the two failures and their fix to this PNG (models: the model without a contract, then the one with it)')
    parser.add_argument('--recipe', action='store_true', help='instead: train the default recipe and variants without each of its parts, short budget (the models argument is ignored)')
    parser.add_argument('--phase', action='store_true', help='instead: score perfect labels shrunk x0.5 centred against the nearest-neighbour truth (no model)')
    parser.add_argument('--loko', action='store_true', help='leave one kind out instead: train one model per kind (the models argument is ignored)')
    parser.add_argument('--epochs', type=int, default=6, help='--loko: epochs per model (default: 6)')
    parser.add_argument('--crops-per-image', type=int, default=1, help='--loko: crops per image per epoch (default: 1)')
    arguments = parser.parse_args()
    global TTA, CURVE, CURVE_RGB, ENSEMBLE
    TTA, CURVE, CURVE_RGB, ENSEMBLE = arguments.tta, arguments.curve, arguments.curve_rgb, tuple(arguments.ensemble)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = load_dsb(arguments.data, progress=False)
    import platform, subprocess
    result = dict(command='python ' + ' '.join(sys.argv), date=time.strftime('%Y-%m-%d %H:%M'),
                  machine=f"{os.cpu_count()} CPU cores, {platform.machine()}",
                  commit=subprocess.run(['git', 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout.strip(), tta=TTA, curve=CURVE, curve_rgb=CURVE_RGB, ensemble=list(ENSEMBLE),
                  **(dict(figure=failure_figure(*arguments.models, samples, arguments.figure)) if arguments.figure else
                     dict(recipe_ablation=recipe_ablation(samples, arguments.epochs, arguments.crops_per_image, arguments.limit or 40, arguments.conditions)) if arguments.recipe else
                     dict(leave_one_kind_out=leave_one_kind_out(samples, arguments.epochs, arguments.crops_per_image)) if arguments.loko else
                     dict(sampling_phase=sampling_phase(samples, set(split_ids(samples, 0.2, 0)[1]))) if arguments.phase else
                     dict(models={str(path): robustness(path, samples, arguments.conditions, arguments.limit) for path in arguments.models})))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(arguments.out, lambda temporary: temporary.write_text(json.dumps(result, indent=1) + '\n'))

if __name__ == '__main__': main()
