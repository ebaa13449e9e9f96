"""The diameter estimate without its hopeless enlarging candidates: are its choices unchanged? (issue 37)

`diameter_candidates` now tries the largest candidates (the image shrunk most, the cheapest) first, and stops before an
enlarging candidate once the objects already found, enlarged with it, would measure above `HOPELESS` training
diameters. This script estimates the diameter of every validation image of a model, under the robustness table's
conditions, with every candidate tried and with the hopeless ones skipped, and counts the choices that change and the
candidates' time.

    python experiments/estimate_skip.py results/model_split/model.keras --data ../shared/dsb2018/stage1_train --out results/estimate_skip.json
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

sys.path.insert(0, str(Path(__file__).parent))
import generalisation
from fcn_nuclei.data import load_dsb
from fcn_nuclei.diameter import HOPELESS, choose_diameter, diameter_candidates, estimation_window
from fcn_nuclei.files import write_json
from fcn_nuclei.models import load_model
from fcn_nuclei.normalize import apply_intensity, median_diameter, model_normalization
from fcn_nuclei.plan import plan_input

CONDITIONS = ('unchanged', 'size x0.5', 'size x2', 'size x3', 'brightness x0.25', 'gamma 0.5', 'gamma 2', 'half the nuclei dimmed 10x')

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', type=Path, help='.keras model with config.json beside it')
    parser.add_argument('--data', required=True, help='the DSB training set')
    parser.add_argument('--out', type=Path, required=True, help='JSON file to write')
    parser.add_argument('--limit', type=int, default=None, help='only the first N validation images')
    arguments = parser.parse_args()
    model, contract = load_model(arguments.model), model_normalization(arguments.model)
    config = json.loads((arguments.model.parent/'config.json').read_text())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = load_dsb(arguments.data, progress=False)
    chosen = [s for s in samples if s.id in set(config['validation_ids'])][:arguments.limit]
    rows = []
    for name in CONDITIONS:
        for sample in chosen:
            image, labels = generalisation.CONDITIONS[name](sample.image, sample.labels)
            plan = plan_input(model, image, contract, diameter=contract.diameter, source=sample.id)  # the contract's channel rule and bounds, no estimate
            top, left, bottom, right = estimation_window(*image.shape[:2])
            window = apply_intensity(image[top:bottom, left:right], plan.channel, plan.bounds, sample.id)
            result = dict(condition=name, id=sample.id, true=median_diameter(labels))
            for key, skip in (('every', False), ('skipped', True)):
                started = time.perf_counter()
                candidates = diameter_candidates(model, window, contract.diameter, skip_hopeless=skip)
                result[f'{key}_seconds'] = round(time.perf_counter() - started, 4)
                result[f'{key}_candidates'] = len(candidates)
                result[f'{key}_diameter'] = choose_diameter(candidates, contract.diameter)
            rows.append(result)
        kept = [r for r in rows if r['condition'] == name]
        print(name, sum(abs(r['every_diameter'] - r['skipped_diameter']) > 1e-6 * r['every_diameter'] for r in kept), 'of', len(kept), 'changed;',
              round(sum(r['skipped_seconds'] for r in kept) / sum(r['every_seconds'] for r in kept), 3), 'of the time', flush=True)
    changed = [r for r in rows if abs(r['every_diameter'] - r['skipped_diameter']) > 1e-6 * r['every_diameter']]
    table = [dict(condition=name, images=sum(r['condition'] == name for r in rows),
                  changed=sum(r['condition'] == name for r in changed),
                  candidates_every=float(np.mean([r['every_candidates'] for r in rows if r['condition'] == name])),
                  candidates_skipped=float(np.mean([r['skipped_candidates'] for r in rows if r['condition'] == name])),
                  time_skipped_over_every=round(sum(r['skipped_seconds'] for r in rows if r['condition'] == name) / sum(r['every_seconds'] for r in rows if r['condition'] == name), 3))
             for name in CONDITIONS]
    import platform, subprocess
    write_json(arguments.out, dict(command='python ' + ' '.join(sys.argv), date=time.strftime('%Y-%m-%d %H:%M'), machine=f"{os.cpu_count()} CPU cores, {platform.machine()}",
                                   commit=subprocess.run(['git', 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout.strip(),
                                   hopeless=HOPELESS, table=table, changed=changed, rows=rows))

if __name__ == '__main__': main()
