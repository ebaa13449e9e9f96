"""Is the colour tissue's low score a matter of attention? A specialist continued on the stained tissue alone.

Continues the split model (`results/model_split`) for one more learning-rate cycle on the colour training images
only (its own recipe: contours, bfloat16, gamma 0.9 in 0.4..2.5), then scores it and the model it started from on
the colour validation images, each with the automatic diameter and with its post-processing both as shipped (the
split model's `postprocess.json`) and tuned on those images. Writes one JSON file that `nbs/06_generalisation.ipynb`
reads. About 10 minutes on two cores.

    python experiments/colour_specialist.py --data ../shared/dsb2018/stage1_train --out results/colour_specialist.json
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

from fcn_nuclei.data import load_dsb
from fcn_nuclei.evaluate import object_scores, pixel_scores, tune_postprocessing
from fcn_nuclei.postprocess import read_postprocessing, scaled_labels
from fcn_nuclei.files import write_atomic
from fcn_nuclei.models import load_model
from fcn_nuclei.normalize import model_normalization
from fcn_nuclei.plan import predict_native
from fcn_nuclei.train import train


def scores(model_path: Path, samples, shipped: dict) -> dict:
    "DSB and pixel IoU of a model on `samples`: with the shipped post-processing, and with one tuned on these samples."
    model, normalization = load_model(model_path), model_normalization(model_path)
    predicted = [predict_native(model, s.image, normalization, source=s.id) for s in samples]
    probabilities, scales = [p for p, _ in predicted], [info['scale'] for _, info in predicted]
    tuned, _ = tune_postprocessing(probabilities, samples, scales=scales)
    def dsb(setting): return [object_scores(s.labels, scaled_labels(p, setting, scale))['dsb']
                              for s, p, scale in zip(samples, probabilities, scales)]
    as_shipped, after_tuning = dsb(shipped), dsb(tuned)
    return dict(model=str(model_path), images=len(samples), dsb=round(float(np.mean(as_shipped)), 4), dsb_tuned=round(float(np.mean(after_tuning)), 4),
                tuned_setting=tuned, pixel_iou=round(float(np.mean([pixel_scores(s.mask, p[..., 0] > shipped['threshold'])['iou'] for s, p in zip(samples, probabilities)])), 4),
                per_image=[dict(id=s.id, dsb=round(d, 4)) for s, d in zip(samples, as_shipped)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', required=True, help='the DSB 2018 stage1_train folder')
    parser.add_argument('--base', type=Path, default=Path('results/model_split/model.keras'), help='the model to continue (its config.json holds the split)')
    parser.add_argument('--run', type=Path, default=Path('runs/colour_specialist'), help='where the specialist is trained')
    parser.add_argument('--epochs', type=int, default=12)
    parser.add_argument('--crops-per-image', type=int, default=8)
    parser.add_argument('--out', type=Path, required=True)
    arguments = parser.parse_args()
    config = json.loads((arguments.base.parent/'config.json').read_text())
    validation_ids = set(config['validation_ids'])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); samples = load_dsb(arguments.data, progress=False)
    colour = [s for s in samples if s.kind.startswith('colour')]
    training_ids, colour_validation_ids = [s.id for s in colour if s.id not in validation_ids], [s.id for s in colour if s.id in validation_ids]
    started = time.perf_counter()
    metrics = train(samples=colour, split=(training_ids, colour_validation_ids), out=arguments.run, epochs=arguments.epochs, crops_per_image=arguments.crops_per_image,
                    learning_rate=3e-4, seed=1, contours=True, precision='mixed_bfloat16', gamma=(0.9, 0.4, 2.5), initial_weights=arguments.base, verbose=2, overwrite=True)
    train_seconds = round(time.perf_counter() - started, 1)
    shipped = read_postprocessing(arguments.base.parent/'postprocess.json')
    validation = [s for s in colour if s.id in validation_ids]
    result = dict(command='python ' + ' '.join(sys.argv), date=time.strftime('%Y-%m-%d %H:%M'), machine=f"{os.cpu_count()} CPU cores, {platform.machine()}",
                  commit=subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip(),
                  training_images=len(training_ids), validation_images=len(validation), epochs=arguments.epochs, crops_per_image=arguments.crops_per_image,
                  train_seconds=train_seconds, specialist_validation_iou=round(metrics['validation_iou'], 4), postprocessing=shipped,
                  base=scores(arguments.base, validation, shipped), specialist=scores(arguments.run/'model.keras', validation, shipped))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(arguments.out, lambda temporary: temporary.write_text(json.dumps(result, indent=1) + '\n'))
    print(json.dumps({key: result[key] for key in ('train_seconds', 'specialist_validation_iou')} | {name: {k: result[name][k] for k in ('dsb', 'dsb_tuned', 'pixel_iou')} for name in ('base', 'specialist')}))


if __name__ == '__main__':
    main()
