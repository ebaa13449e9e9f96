"""Dim nuclei beside bright ones, on the input side: a second look at the image with its contrast raised (issue 38).

The contract stretches each image once, between its 1st and 99.8th percentiles, so that in a field whose nuclei
differ tenfold in brightness the dim ones reach the network near the background. This experiment gives the network a
second exposure with `--gain` times the contrast, and takes the second exposure's probabilities only away from what
the first one found (outside the first pass's nuclei grown by `--margin` pixels): the bright nuclei keep the first
look, the dim ones get the second. Two ways to raise the contrast:

- `--mode prepared`: the prepared 8-bit image, its contrast about the background (the median) multiplied and clipped;
- `--mode raw`: a second stretch of the image as read, between bounds `--gain` times closer together (from the low
  bound up on a dark background, from the high bound down on a bright one), so a 16-bit image's dim nuclei keep their
  grey levels.

Scored like `generalisation.py` (same images, conditions, post-processing), one JSON per run; the extra condition
`half the nuclei dimmed 10x, 16-bit` dims the same nuclei of the image x 257 in floating point and keeps 16 bits, as a
16-bit camera would record such a field, where the 8-bit condition leaves a dimmed nucleus a few grey levels.

    python experiments/two_exposures.py results/model_split/model.keras --data ../shared/dsb2018/stage1_train --mode raw --gain 10 --out results/two_exposures.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
import generalisation
from fcn_nuclei.data import load_dsb
from fcn_nuclei.files import write_atomic
from dataclasses import replace

from fcn_nuclei.evaluate import object_scores
from fcn_nuclei.models import load_model
from fcn_nuclei.normalize import median_diameter, model_normalization
from fcn_nuclei.plan import plan_input, predict_planned
from fcn_nuclei.postprocess import scaled_labels
from fcn_nuclei.predict import predict_probabilities

GAIN, MARGIN, TISSUE, MODE = 10.0, 3, False, 'prepared'

def _half_dimmed_16bit(image, labels, factor=10.0):
    "`generalisation._half_dimmed` on the image x 257 in floating point, kept at 16 bits: the dimmed nuclei keep their grey levels."
    inside, dimmed = labels > 0, (labels > 0) & (labels % 2 == 0)
    wide = image.astype(np.float64) * 257
    if not dimmed.any() or inside.all(): return wide.astype(np.uint16), labels
    background = np.median(wide[~inside].reshape(-1, wide.shape[-1]), axis=0)
    wide[dimmed] = background + (wide[dimmed] - background) / factor
    return np.clip(wide + 0.5, 0, 65535).astype(np.uint16), labels

generalisation.CONDITIONS['half the nuclei dimmed 10x, 16-bit'] = _half_dimmed_16bit

def second_exposure(prepared: np.ndarray, gain: float) -> np.ndarray:
    "The prepared 8-bit image with its contrast about the background (the median of each channel) multiplied by `gain`, clipped to 0..255: dim nuclei on a dark background brighten, on a bright one darken."
    background = np.median(prepared.reshape(-1, prepared.shape[-1]), axis=0)
    return np.clip(background + (prepared.astype(np.float32) - background) * gain + 0.5, 0, 255).astype(np.uint8)

def two_exposure_probabilities(model, prepared):
    "The first pass's probabilities near what it found, the second exposure's elsewhere (grey images only unless --tissue: stained tissue keeps one pass)."
    first = predict_probabilities(model, prepared)
    if GAIN == 1.0 or not (TISSUE or generalisation._grey(prepared)): return first
    second = predict_probabilities(model, second_exposure(prepared, GAIN))
    return merged(first, second)

def merged(first, second):
    "The first pass's probabilities near the nuclei it found (grown by `MARGIN` pixels), the second's elsewhere."
    found = first[..., 0] > 0.5
    if MARGIN: found = ndimage.binary_dilation(found, iterations=MARGIN)
    return np.where(found[..., None], first, second)

def second_bounds(bounds, dark_background: bool, gain: float):
    "Stretch bounds `gain` times closer together: from the low bound up on a dark background, from the high bound down on a bright one."
    low, high = bounds
    return (low, low + (high - low) / gain) if dark_background else (high - (high - low) / gain, high)

def score_raw(model, normalization, setting, image, labels, source, diameter=None, keep=None):
    "`generalisation.score` with `--mode raw`: one plan, two stretches of the image as read, merged."
    plan = plan_input(model, image, normalization, diameter, source=source)
    predict = lambda prepared: predict_probabilities(model, prepared)
    probabilities = predict_planned(plan, image, predict)
    if GAIN != 1.0 and plan.bounds is not None and (TISSUE or plan.channel != 'rgb'):
        dark_background = float(np.median(plan.prepare_whole(image))) < 128
        second = replace(plan, bounds=second_bounds(plan.bounds, dark_background, GAIN), prepared=None)
        probabilities = merged(probabilities, predict_planned(second, image, predict))
    predicted = scaled_labels(probabilities, setting, plan.scale)
    if keep is not None: keep['labels'] = predicted
    info = plan.info()
    return dict(dsb=object_scores(labels, predicted)['dsb'], diameter=info['diameter'], true_diameter=median_diameter(labels))

def matched_nuclei(truth, predicted):
    "The true nuclei matched at IoU > 0.5 by a predicted one, and the predicted nuclei that match one."
    hits, used = set(), set()
    sizes = np.bincount(predicted.ravel())
    for label in np.unique(truth)[1:]:
        mask = truth == label
        ids, counts = np.unique(predicted[mask], return_counts=True)
        for found, overlap in zip(ids, counts):
            if found and overlap / (mask.sum() + sizes[found] - overlap) > 0.5: hits.add(int(label)); used.add(int(found)); break
    return hits, used

def diagnose(model_path: Path, samples, limit: int) -> dict:
    "Where the dimmed nuclei go: their contrast left in the file, and the nuclei each exposure finds (dimmed, bright, false), 16-bit condition, raw second stretch."
    model, contract = load_model(model_path), model_normalization(model_path)
    setting = json.loads((model_path.parent/'postprocess.json').read_text())
    ids = set(json.loads((model_path.parent/'config.json').read_text())['validation_ids'])
    chosen = [s for s in samples if s.id in ids][:limit]
    contrasts, counts = [], {}
    predict = lambda prepared: predict_probabilities(model, prepared)
    for sample in chosen:
        dimmed_image, labels = generalisation._half_dimmed(sample.image, sample.labels)
        grey, inside = dimmed_image.astype(np.float64).mean(-1), labels > 0
        background = np.median(grey[~inside])
        contrasts += [abs(grey[labels == label].mean() - background) for label in np.unique(labels)[1:] if label % 2 == 0]
        image, labels = _half_dimmed_16bit(sample.image, sample.labels)
        plan = plan_input(model, image, contract, source=sample.id)
        first = predict_planned(plan, image, predict)
        dark_background = float(np.median(plan.prepare_whole(image))) < 128
        second = predict_planned(replace(plan, bounds=second_bounds(plan.bounds, dark_background, GAIN), prepared=None), image, predict)
        for name, probabilities in (('one stretch', first), ('second stretch alone', second), ('merged', merged(first, second))):
            predicted = scaled_labels(probabilities, setting, plan.scale)
            hits, used = matched_nuclei(labels, predicted)
            row = counts.setdefault(name, dict(dimmed_found=0, bright_found=0, false=0, dimmed=0, bright=0))
            row['dimmed_found'] += sum(h % 2 == 0 for h in hits); row['bright_found'] += sum(h % 2 == 1 for h in hits)
            row['false'] += len(np.unique(predicted)) - 1 - len(used)
            row['dimmed'] += sum(int(l) % 2 == 0 for l in np.unique(labels)[1:]); row['bright'] += sum(int(l) % 2 == 1 for l in np.unique(labels)[1:])
    contrasts = np.asarray(contrasts)
    return dict(images=len(chosen), gain=GAIN, margin=MARGIN, exposures=counts,
                dimmed_contrast_8bit=dict(nuclei=len(contrasts), median=float(np.median(contrasts)), quartiles=[float(q) for q in np.percentile(contrasts, [25, 75])],
                                          below_4_levels=float(np.mean(contrasts < 4))))

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', type=Path, help='.keras model with config.json and postprocess.json beside it')
    parser.add_argument('--data', required=True, help='the DSB training set')
    parser.add_argument('--out', type=Path, required=True, help='JSON file to write')
    parser.add_argument('--mode', choices=('prepared', 'raw'), default='raw', help='raise the contrast of the prepared 8-bit image, or stretch the image as read again (default)')
    parser.add_argument('--gain', type=float, default=10.0, help='contrast gain of the second exposure (1: one pass, the control)')
    parser.add_argument('--margin', type=int, default=3, help='pixels (at the working scale) around the first pass\'s nuclei kept from the first pass')
    parser.add_argument('--tissue', action='store_true', help='give stained tissue (colour images) the second exposure too')
    parser.add_argument('--conditions', nargs='+', default=list(generalisation.CONDITIONS), choices=list(generalisation.CONDITIONS))  # the 16-bit dimmed condition included
    parser.add_argument('--limit', type=int, default=None, help='score only the first N validation images (a quick look)')
    parser.add_argument('--diagnose', action='store_true', help='instead: count the dimmed, bright and false nuclei each exposure finds (16-bit condition, raw mode; first --limit images, default 40)')
    arguments = parser.parse_args()
    global GAIN, MARGIN, TISSUE, MODE
    GAIN, MARGIN, TISSUE, MODE = arguments.gain, arguments.margin, arguments.tissue, arguments.mode
    if MODE == 'prepared': generalisation.ensemble_probabilities = two_exposure_probabilities  # `generalisation.score` predicts through this name
    else: generalisation.score = score_raw
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = load_dsb(arguments.data, progress=False)
    started = time.perf_counter()
    result = dict(command='python ' + ' '.join(sys.argv), date=time.strftime('%Y-%m-%d %H:%M'), machine=f"{os.cpu_count()} CPU cores, {platform.machine()}",
                  commit=subprocess.run(['git', 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout.strip(),
                  mode=MODE, gain=GAIN, margin=MARGIN, tissue=TISSUE,
                  **(dict(diagnosis=diagnose(arguments.model, samples, arguments.limit or 40)) if arguments.diagnose else
                     dict(models={str(arguments.model): generalisation.robustness(arguments.model, samples, arguments.conditions, arguments.limit)})))
    result['seconds'] = round(time.perf_counter() - started, 1)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(arguments.out, lambda temporary: temporary.write_text(json.dumps(result, indent=1) + '\n'))

if __name__ == '__main__': main()
