"""Dense clusters of small nuclei: what the split model's errors are on the dense validation images, and whether the post-processing can mend them.

    python experiments/dense_clusters.py cache --out runs/dense            # the split model's probabilities of the 133 validation images, once
    python experiments/dense_clusters.py cache --enlarge 1.5 --out runs/dense_enlarged   # each image enlarged 1.5x more than the contract asks
    python experiments/dense_clusters.py diagnose --out runs/dense          # each true nucleus found, merged, split, missed or poorly outlined
    python experiments/dense_clusters.py boundaries --out runs/dense        # what the network outputs where two true nuclei touch
    python experiments/dense_clusters.py variants --out runs/dense         # post-processing variants scored on the cached probabilities

The dense images are those of `results/touching_dense.json` (the quarter whose true contours most often touch another
nucleus, fixed from the labels before any score was read). The probabilities are those `fcn-nuclei predict` computes
(the plan, the estimated diameter); the labels are made from them as `fcn_nuclei.postprocess.scaled_labels` makes them.
"""
from __future__ import annotations

import argparse, json, os, sys, time
from pathlib import Path
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np
from scipy import ndimage

from fcn_nuclei.data import load_dsb
from fcn_nuclei.evaluate import DSB_THRESHOLDS, intersection_table, object_scores
from fcn_nuclei.files import write_atomic
from fcn_nuclei.postprocess import scaled_labels

MODEL = Path('results/model_split/model.keras')

def validation_ids() -> list[str]:
    "The split model's 133 validation image ids."
    config = json.loads((MODEL.parent/'config.json').read_text())
    return sorted(config['validation_ids'])

def cache(data: str, out: Path, enlarge: float = 1.0):
    "Native probabilities, scale and estimated diameter of every validation image, as `fcn-nuclei predict` computes them; with `enlarge` above 1, each image enlarged that much more than its estimated diameter asks (the estimate read from `runs/dense`, the first cache)."
    from fcn_nuclei.models import load_model
    from fcn_nuclei.normalize import model_normalization
    from fcn_nuclei.plan import predict_native
    model, normalization = load_model(MODEL), model_normalization(MODEL)
    (out/'probabilities').mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for sample in load_dsb(data, ids=validation_ids(), progress=False):
        given = None if enlarge == 1.0 else float(np.load(Path('runs/dense')/'probabilities'/f'{sample.id}.npz')['diameter']) / enlarge
        probabilities, info = predict_native(model, sample.image, normalization, diameter=given, source=sample.id)
        np.savez_compressed(out/'probabilities'/f'{sample.id}.npz', probabilities=probabilities.astype(np.float16), scale=info['scale'], diameter=info['diameter'])
    print(f'cached {len(validation_ids())} images in {time.perf_counter() - started:.0f} s')

def cached(out: Path, image_id: str):
    "The cached probabilities and scale of one image."
    stored = np.load(out/'probabilities'/f'{image_id}.npz')
    return stored['probabilities'].astype(np.float32), float(stored['scale'])

def overlaps(true_labels: np.ndarray, predicted_labels: np.ndarray):
    "Pixels shared by every true (rows) and predicted (columns) nucleus, with their IoU and both areas: the metric's own table (`intersection_table`)."
    iou, true_area, predicted_area = intersection_table(true_labels, predicted_labels)
    shared = np.rint(iou * (true_area[:, None] + predicted_area[None, :]) / (1 + iou)).astype(np.int64)  # IoU = s / (a + b - s)
    return shared, iou, true_area, predicted_area

def merged_columns(shared: np.ndarray, true_area: np.ndarray) -> np.ndarray:
    "Whether each prediction holds most (half or more) of two or more true nuclei."
    return (shared >= 0.5 * true_area[:, None]).sum(axis=0) >= 2

def error_kinds(true_labels: np.ndarray, predicted_labels: np.ndarray) -> dict:
    "Each true nucleus as one of: found (a prediction with IoU > 0.5), merged (its best prediction holds most of another true nucleus too), split (two predictions each hold a quarter of it), missed (under half of it predicted as nucleus), poorly outlined (the rest); and the score at each IoU threshold of the DSB metric."
    shared, iou, true_area, predicted_area = overlaps(true_labels, predicted_labels)
    merged = merged_columns(shared, true_area)
    kinds = dict(found=0, merged=0, split=0, missed=0, poorly_outlined=0)
    for i in range(len(true_area)):
        if (iou[i] > 0.5).any(): kinds['found'] += 1
        elif shared[i].sum() < 0.5 * true_area[i]: kinds['missed'] += 1
        elif merged[int(np.argmax(shared[i]))]: kinds['merged'] += 1
        elif (shared[i] >= 0.25 * true_area[i]).sum() >= 2: kinds['split'] += 1
        else: kinds['poorly_outlined'] += 1
    found = [int((iou > threshold).any(axis=1).sum()) if iou.size else 0 for threshold in DSB_THRESHOLDS]
    thresholds = [tp / max(len(true_area) + len(predicted_area) - tp, 1) for tp in found]
    return dict(**kinds, true=int(len(true_area)), predicted=int(len(predicted_area)), thresholds=thresholds)

def dense_ids() -> list[str]:
    return json.loads(Path('results/touching_dense.json').read_text())['dense_ids']

def diagnose(data: str, out: Path, setting: dict) -> dict:
    "Error kinds and the score at each IoU threshold, on the dense images and on the others."
    dense, groups = set(dense_ids()), {'dense': [], 'other': []}
    for sample in load_dsb(data, ids=validation_ids(), progress=False):
        probabilities, scale = cached(out, sample.id)
        predicted = scaled_labels(probabilities, setting, scale)
        groups['dense' if sample.id in dense else 'other'].append(dict(id=sample.id, scale=scale, **error_kinds(sample.labels, predicted)))
    summary = {}
    for name, rows in groups.items():
        total = {key: int(sum(row[key] for row in rows)) for key in ('true', 'predicted', 'found', 'merged', 'split', 'missed', 'poorly_outlined')}
        summary[name] = dict(images=len(rows), **total, **{f'{key}_share': total[key] / total['true'] for key in ('found', 'merged', 'split', 'missed', 'poorly_outlined')},
                             score_by_iou=[round(float(np.mean([row['thresholds'][k] for row in rows])), 3) for k in range(10)],
                             median_scale=float(np.median([row['scale'] for row in rows])))
    return dict(summary=summary, rows=groups)

BACKGROUND = 2**31 - 1  # above any label: the background, for a minimum filter over labels (int64's largest overflows in ndimage)

def boundaries(data: str, out: Path, setting: dict) -> dict:
    "On the dense images: the contour and nucleus probabilities on the pixels where two true nuclei touch, inside a predicted nucleus; and the area of each merged prediction (one that holds most of two or more true nuclei) over the image's median prediction."
    contour, nucleus, ratios = [], [], []
    for sample in load_dsb(data, ids=dense_ids(), progress=False):
        probabilities, scale = cached(out, sample.id)
        predicted, truth = scaled_labels(probabilities, setting, scale), sample.labels
        largest, smallest = ndimage.maximum_filter(truth, 3), ndimage.minimum_filter(np.where(truth == 0, BACKGROUND, truth.astype(np.int64)), 3)
        touching = (truth > 0) & (((largest != truth) & (largest > 0)) | ((smallest != truth) & (smallest < BACKGROUND))) & (predicted > 0)
        contour.append(probabilities[..., 1][touching]); nucleus.append(probabilities[..., 0][touching])
        shared, _, true_area, predicted_area = overlaps(truth, predicted)
        if len(predicted_area): ratios += (predicted_area[merged_columns(shared, true_area)] / np.median(predicted_area)).tolist()
    quantiles = [0.1, 0.25, 0.5, 0.75, 0.9]
    summary = dict(quantiles=quantiles, touching_pixels=int(sum(map(len, contour))),
                   contour_probability=np.quantile(np.concatenate(contour), quantiles).round(3).tolist(),
                   nucleus_probability=np.quantile(np.concatenate(nucleus), quantiles).round(3).tolist(),
                   merged_predictions=len(ratios), merged_area_over_median=np.quantile(ratios, quantiles).round(2).tolist())
    return dict(summary=summary)

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('step', choices=['cache', 'diagnose', 'boundaries', 'variants'])
    parser.add_argument('--data', default='../shared/dsb2018/stage1_train')
    parser.add_argument('--out', type=Path, default=Path('runs/dense'))
    parser.add_argument('--variants', nargs='+', help='variants to score (default: all)')
    parser.add_argument('--enlarge', type=float, default=1.0, help='cache: enlarge each image this much more than its estimated diameter asks')
    parser.add_argument('--json', type=Path, help='where to write the result (JSON)')
    arguments = parser.parse_args()
    setting = json.loads((MODEL.parent/'postprocess.json').read_text())
    install_split()
    if arguments.step == 'cache': return cache(arguments.data, arguments.out, arguments.enlarge)
    if arguments.step == 'diagnose': result = diagnose(arguments.data, arguments.out, setting)
    elif arguments.step == 'boundaries': result = boundaries(arguments.data, arguments.out, setting)
    else: result = variants(arguments.data, arguments.out, setting, arguments.variants)
    result = dict(command=' '.join(['python'] + sys.argv), postprocessing=setting, **result)
    print(json.dumps(result.get('summary', result.get('table')), indent=1))
    if arguments.json: write_atomic(arguments.json, lambda temporary: Path(temporary).write_text(json.dumps(result, indent=1) + '\n'))

VARIANTS = {  # name -> changes to the split model's post-processing (interior markers, threshold 0.5, contour threshold 0.3, markers 8 px apart)
    'as tuned': {},
    'contour threshold 0.2': dict(contour_threshold=0.2),
    'contour threshold 0.15': dict(contour_threshold=0.15),
    'markers 6 px apart': dict(min_distance=6),
    'markers 5 px apart': dict(min_distance=5),
    'contour threshold 0.2, markers 6 px apart': dict(contour_threshold=0.2, min_distance=6),
}
VARIANTS.update({f'nucleus threshold {t}': dict(threshold=t) for t in (0.35, 0.4, 0.45, 0.55, 0.6)})
SPLIT_VARIANTS = {f'split above {factor}x the median, h {h}': (factor, h) for factor in (1.5, 2.0) for h in (1.0, 2.0)}
VARIANTS.update({name: {} for name in SPLIT_VARIANTS})

SPLIT = dict(factor=0.0, h=1.0)  # objects larger than `factor` times the image's median object are split at their shape's necks (0: off)

def split_oversized(labels: np.ndarray, factor: float, h: float) -> np.ndarray:
    "Objects larger than `factor` times the median object of the image cut along the necks of their shape: a watershed of the distance to their outline from its h-maxima (peaks standing `h` pixels above their surroundings), when it finds two or more."
    from skimage import measure, morphology, segmentation
    areas = np.bincount(labels.ravel()); areas[0] = 0
    present = areas[areas > 0]
    if len(present) < 4: return labels
    large = np.flatnonzero(areas > factor * np.median(present))
    if not len(large): return labels
    result, next_label = labels.copy(), int(labels.max()) + 1
    for box_index, box in enumerate(ndimage.find_objects(labels)):
        label = box_index + 1
        if box is None or label not in set(large.tolist()): continue
        box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        region = labels[box] == label
        distance = ndimage.distance_transform_edt(region)
        peaks = measure.label(morphology.h_maxima(distance, h) & region, connectivity=2)
        if peaks.max() < 2: continue
        parts = segmentation.watershed(-distance, peaks, mask=region)
        window = result[box]
        for part in range(2, int(parts.max()) + 1): window[parts == part] = next_label; next_label += 1
    return result

def install_split():
    "Wrap the post-processing so that every label image it makes is passed through `split_oversized` with `SPLIT`'s settings."
    import fcn_nuclei.postprocess as postprocess
    original = postprocess.probabilities_to_labels
    def split(probabilities, **setting):
        labels = original(probabilities, **setting)
        return labels if not SPLIT['factor'] else postprocess._clean(split_oversized(labels, SPLIT['factor'], SPLIT['h']), setting.get('min_size', 8))
    postprocess.probabilities_to_labels = split

def variants(data, out, setting, names=None):
    "The DSB score of each post-processing variant on the dense images, the others and all 133."
    dense, samples = set(dense_ids()), list(load_dsb(data, ids=validation_ids(), progress=False))
    table = []
    for name in names or VARIANTS:
        started, scores = time.perf_counter(), {}
        SPLIT.update(factor=SPLIT_VARIANTS.get(name, (0.0, 1.0))[0], h=SPLIT_VARIANTS.get(name, (0.0, 1.0))[1])
        for sample in samples:
            probabilities, scale = cached(out, sample.id)
            scores[sample.id] = object_scores(sample.labels, scaled_labels(probabilities, {**setting, **VARIANTS[name]}, scale))['dsb']
        table.append(dict(variant=name, setting={**setting, **VARIANTS[name]}, dsb=float(np.mean(list(scores.values()))),
                          dsb_dense=float(np.mean([v for k, v in scores.items() if k in dense])), dsb_other=float(np.mean([v for k, v in scores.items() if k not in dense])),
                          seconds=round(time.perf_counter() - started, 1)))
        print(json.dumps({k: v for k, v in table[-1].items() if k != 'setting'}), flush=True)
    return dict(table=table)

if __name__ == '__main__': main()
