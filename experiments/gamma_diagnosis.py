"""Where a gamma of 2 loses its DSB score: the curve, or the 8-bit levels it merges in the dark? And is it the post-processing?

The model's validation images unchanged and under a gamma of 2 (as `generalisation.py` bends them: 8-bit in, 8-bit out),
and the same curve kept in more levels: computed in floating point, and saved in a 16-bit file. Each is predicted once,
as `fcn-nuclei predict` does (automatic diameter), and post-processed three ways: the shipped setting, the distance
watershed the model had before, and the shipped setting with a lower nucleus threshold (0.4). Besides the DSB score,
the predicted nucleus area against the true one, and the mean IoU of the nuclei matched at IoU > 0.5: a nucleus found
but drawn too small keeps its match and loses IoU. Writes JSON that `nbs/06_generalisation.ipynb` reads.

    python experiments/gamma_diagnosis.py results/model_split/model.keras --data ../shared/dsb2018/stage1_train --out results/generalisation_gamma.json

With --float-input, the contract's stretch is kept in floating point up to the network (no rounding to the 8-bit input
`fcn-nuclei` feeds it): whether the levels the curve squeezes are lost in the file or in that last rounding.
"""
from __future__ import annotations

import argparse, json, os, platform, subprocess, sys, time, warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generalisation import CONDITIONS  # the 8-bit gamma of the robustness table
from fcn_nuclei.data import load_dsb
from fcn_nuclei.evaluate import intersection_table, object_scores
from fcn_nuclei.postprocess import scaled_labels
from fcn_nuclei.files import write_atomic
from fcn_nuclei.models import load_model
import fcn_nuclei.normalize as normalize
from fcn_nuclei.normalize import model_normalization
from fcn_nuclei.plan import predict_native
from fcn_nuclei.predict import predict_probabilities

VARIANTS = {
    'unchanged': CONDITIONS['unchanged'],
    'gamma 2, 8 bits': CONDITIONS['gamma 2'],
    'gamma 2, floating point': lambda image, labels: (((image / 255.0) ** 2.0 * 255.0).astype(np.float32), labels),
    'gamma 2, 16 bits': lambda image, labels: (np.round((image / 255.0) ** 2.0 * 65535.0).astype(np.uint16), labels),
}

def float_stretch(image, bounds):
    "`normalize.apply_stretch` without its rounding: float32 0..255."
    values = np.asarray(image)
    if bounds is None: return np.zeros(values.shape, np.float32)
    low, high = bounds
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.float32)

def float_resize(image, height, width, box=None, _uint8_resize=normalize.resize_image):
    "`normalize.resize_image` for a float32 image too (Pillow's 32-bit float mode, the same filters)."
    if image.dtype == np.uint8: return _uint8_resize(image, height, width, box)
    if image.shape[:2] == (height, width) and box is None: return image
    method = Image.LANCZOS if height > (image.shape[0] if box is None else box[2] - box[0]) else Image.BILINEAR
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), 'F').resize((width, height), method, box=None if box is None else (box[1], box[0], box[3], box[2]))) for c in range(image.shape[-1])]
    return np.clip(np.stack(channels, axis=-1), 0, 255)

def matched_iou(true_labels, predicted_labels) -> tuple[float, int]:
    "Sum and count of the IoUs of the true nuclei matched at IoU > 0.5 (a match is unique at that threshold)."
    iou = intersection_table(true_labels, predicted_labels)[0]
    if iou.size == 0: return 0.0, 0
    best = iou.max(axis=1)
    matched = best > 0.5
    return float(best[matched].sum()), int(matched.sum())

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model', type=Path)
    parser.add_argument('--data', type=Path, required=True)
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--float-input', action='store_true', help='feed the network the stretched image in floating point, not rounded to 8 bits')
    parser.add_argument('--limit', type=int, default=None, help='first N validation images only (a quick check)')
    arguments = parser.parse_args()
    if arguments.float_input:  # the stretch is looked up in `normalize`; the resize in `normalize` (the diameter estimate) and in `plan` (`predict_native`)
        import fcn_nuclei.plan as plan
        normalize.apply_stretch, normalize.resize_image, plan.resize_image = float_stretch, float_resize, float_resize
    model, normalization = load_model(arguments.model), model_normalization(arguments.model)
    config = json.loads((arguments.model.parent/'config.json').read_text())
    shipped = json.loads((arguments.model.parent/'postprocess.json').read_text())
    settings = {'shipped': shipped, 'distance watershed': dict(method='watershed', threshold=0.5, min_size=8, min_distance=8),
                'shipped, threshold 0.4': {**shipped, 'threshold': 0.4}}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # overlapping masks in a few images: reported by load_dsb, irrelevant here
        chosen = [s for s in load_dsb(arguments.data, progress=False) if s.id in set(config['validation_ids'])][:arguments.limit]
    started, table = time.perf_counter(), []
    for variant, change in VARIANTS.items():
        totals = {name: dict(dsb=[], predicted_area=0, true_area=0, iou_sum=0.0, matched=0) for name in settings}
        for sample in chosen:
            image, labels = change(sample.image, sample.labels)
            probabilities, info = predict_native(model, image, normalization, lambda prepared: predict_probabilities(model, prepared), source=sample.id)
            for name, setting in settings.items():
                predicted = scaled_labels(probabilities, setting, info['scale'])
                total = totals[name]
                total['dsb'].append(object_scores(labels, predicted)['dsb'])
                total['predicted_area'] += int((predicted > 0).sum()); total['true_area'] += int((labels > 0).sum())
                iou_sum, matched = matched_iou(labels, predicted); total['iou_sum'] += iou_sum; total['matched'] += matched
        for name, total in totals.items():
            table.append(dict(variant=variant, postprocessing=name, images=len(total['dsb']), dsb=float(np.mean(total['dsb'])),
                              area_ratio=total['predicted_area'] / total['true_area'], matched=total['matched'],
                              matched_iou=total['iou_sum'] / max(total['matched'], 1)))
            print(json.dumps(table[-1]), flush=True)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
    payload = dict(command='python experiments/gamma_diagnosis.py ' + ' '.join(sys.argv[1:]), date=time.strftime('%Y-%m-%d %H:%M'),
                   machine=f"{os.cpu_count()} CPU cores, {platform.machine()}", commit=commit, model=str(arguments.model), float_input=arguments.float_input,
                   settings=settings, seconds=round(time.perf_counter() - started, 1), table=table)
    write_atomic(arguments.out, lambda temporary: Path(temporary).write_text(json.dumps(payload, indent=1) + '\n'))
