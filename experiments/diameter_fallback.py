"""Two changes to the diameter estimate, measured before adopting either: candidates down to the 4x enlargement limit
(diameters from a quarter of the training diameter, instead of half), and the training diameter as the fallback when no
candidate's objects measure consistently (instead of the candidate that comes closest).

Scores the model's validation images under some of `generalisation.py`'s conditions with the four combinations, the
candidates of all of them from one pass, and writes per-image rows (with every candidate) and a summary table.

    python experiments/diameter_fallback.py results/model_split/model.keras --data ../shared/dsb2018/stage1_train \
        --conditions unchanged "size x0.5" "size x3" "gamma 2" "brightness x0.25" --rows runs/diameter_fallback_rows.json --out results/diameter_fallback.json
    python experiments/diameter_fallback.py --summarise runs/diameter_fallback_rows.json --out results/diameter_fallback.json  # the table again, from stored rows
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from generalisation import CONDITIONS  # the same transforms as the robustness table
from fcn_nuclei.files import write_atomic
from fcn_nuclei import normalize
from fcn_nuclei import diameter as diameter_estimate

WIDE_STEPS = tuple(0.5 * step for step in range(-4, 8))  # the training diameter x 2**step, from /4 (the 4x enlargement limit) to x11.3
RULES = {'current': (diameter_estimate.ESTIMATION_STEPS, False), 'wide': (WIDE_STEPS, False), 'wide_fallback': (WIDE_STEPS, True), 'fallback': (diameter_estimate.ESTIMATION_STEPS, True)}
NAMES = {'current': 'current rule', 'wide': 'wider range', 'wide_fallback': 'wider range, training-diameter fallback', 'fallback': 'training-diameter fallback'}

def consistent(candidate, training_diameter) -> bool:
    "A candidate whose objects measure within `CONSISTENCY` of the training diameter."
    return candidate['objects'] > 0 and np.isfinite(candidate['diameter']) and abs(math.log(candidate['diameter'] / training_diameter)) < math.log(diameter_estimate.CONSISTENCY)

def choose(candidates, training_diameter, steps, fallback):
    "`diameter_estimate.choose_diameter` over the candidates of `steps`; with `fallback`, the training diameter when none is consistent."
    candidates = [c for c in candidates if round(math.log2(c['candidate'] / training_diameter) * 2) / 2 in steps]
    if fallback and not any(consistent(c, training_diameter) for c in candidates): return float(training_diameter)
    return diameter_estimate.choose_diameter(candidates, training_diameter)

def measure(model_path: Path, data: str, conditions: list[str]) -> list[dict]:
    "Per image and condition: the candidates, and each rule's diameter (`d_`), nuclei found (`n_`) and DSB score (`dsb_`)."
    from fcn_nuclei.data import load_dsb
    from fcn_nuclei.evaluate import object_scores
    from fcn_nuclei.postprocess import scaled_labels
    from fcn_nuclei.models import load_model
    from fcn_nuclei.predict import predict_probabilities
    model, contract = load_model(model_path), normalize.model_normalization(model_path)
    config = json.loads((model_path.parent/'config.json').read_text())
    setting = json.loads((model_path.parent/'postprocess.json').read_text())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        validation = [s for s in load_dsb(data, progress=False) if s.id in set(config['validation_ids'])]
    training_diameter, rows = contract.diameter, []
    for name in conditions:
        started = time.perf_counter()
        for sample in validation:
            changed = CONDITIONS[name](sample.image, sample.labels)
            if changed is None: continue
            image, labels = changed
            prepared, _ = contract.prepare(image, source=sample.id)
            candidates = diameter_estimate.diameter_candidates(model, prepared, training_diameter, steps=WIDE_STEPS, skip_hopeless=False)  # every candidate, as when this ran
            row, scored = dict(condition=name, id=sample.id, kind=sample.kind, true=normalize.median_diameter(labels), candidates=candidates), {}
            for rule, (steps, fallback) in RULES.items():
                diameter = choose(candidates, training_diameter, steps, fallback)
                if round(diameter, 4) not in scored:
                    scale = float(np.clip(training_diameter / diameter, *normalize.SCALE_LIMITS)); height, width = prepared.shape[:2]
                    resized = normalize.resize_image(prepared, *normalize.scaled_size(height, width, scale))
                    probabilities = normalize.resize_probabilities(predict_probabilities(model, resized), height, width)
                    predicted = scaled_labels(probabilities, setting, scale)
                    scored[round(diameter, 4)] = (object_scores(labels, predicted)['dsb'], int(predicted.max()))
                row[f'd_{rule}'] = diameter; row[f'dsb_{rule}'], row[f'n_{rule}'] = scored[round(diameter, 4)]
            rows.append(row)
        print(name, f"{time.perf_counter() - started:.0f} s", flush=True)
    return rows

def summarise(rows: list[dict], training_diameter: float) -> list[dict]:
    "Per condition and rule: mean DSB, estimates off by more than a factor of two, images with no consistent candidate, and the most nuclei found in one image."
    table = []
    for name in dict.fromkeys(row['condition'] for row in rows):
        chosen = [row for row in rows if row['condition'] == name]
        for rule, (steps, _) in RULES.items():
            in_range = lambda row: [c for c in row['candidates'] if round(math.log2(c['candidate'] / training_diameter) * 2) / 2 in steps]
            table.append(dict(condition=name, rule=NAMES[rule], images=len(chosen), dsb=round(float(np.mean([row[f'dsb_{rule}'] for row in chosen])), 4),
                              astray=sum(not 0.5 <= row[f'd_{rule}'] / row['true'] <= 2 for row in chosen if np.isfinite(row['true'])),
                              without_consistent_candidate=sum(not any(consistent(c, training_diameter) for c in in_range(row)) for row in chosen),
                              most_nuclei=max(row[f'n_{rule}'] for row in chosen)))
    return table

def fallback_cases(rows: list[dict], training_diameter: float) -> list[dict]:
    "The images where the shipped rule has no consistent candidate: the closest candidate's confidence and objects, and both rules' results."
    cases = []
    for row in rows:
        found = [c for c in row['candidates'] if round(math.log2(c['candidate'] / training_diameter) * 2) / 2 in diameter_estimate.ESTIMATION_STEPS and c['objects'] > 0 and np.isfinite(c['diameter'])]
        if not found or any(consistent(c, training_diameter) for c in found): continue
        closest = min(found, key=lambda c: abs(math.log(c['diameter'] / training_diameter)))
        cases.append(dict(condition=row['condition'], id=row['id'], kind=row['kind'], true_diameter=round(row['true'], 2), closest_candidate=round(closest['candidate'], 2),
                          closest_objects=closest['objects'], closest_measured=round(closest['diameter'], 2), closest_confidence=round(closest['confidence'], 3),
                          diameter_current_rule=round(row['d_current'], 2), dsb_current_rule=round(row['dsb_current'], 4), nuclei_current_rule=row['n_current'],
                          dsb_with_fallback=round(row['dsb_fallback'], 4), nuclei_with_fallback=row['n_fallback']))
    return cases

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', nargs='?', type=Path, help='a .keras model with config.json and postprocess.json beside it (default with --summarise: results/model_split/model.keras)')
    parser.add_argument('--data', default='../shared/dsb2018/stage1_train')
    parser.add_argument('--conditions', nargs='+', default=['unchanged', 'size x0.5', 'size x3', 'gamma 2', 'brightness x0.25'])
    parser.add_argument('--rows', type=Path, default=Path('runs/diameter_fallback_rows.json'), help='per-image rows with every candidate (large; not committed)')
    parser.add_argument('--summarise', type=Path, default=None, metavar='ROWS', help='only summarise stored rows')
    parser.add_argument('--out', type=Path, default=Path('results/diameter_fallback.json'))
    arguments = parser.parse_args()
    if arguments.summarise: rows = json.loads(arguments.summarise.read_text())
    else:
        rows = measure(arguments.model, arguments.data, arguments.conditions)
        arguments.rows.parent.mkdir(parents=True, exist_ok=True); arguments.rows.write_text(json.dumps(rows))
    model = arguments.model or Path('results/model_split/model.keras')
    training_diameter = normalize.model_normalization(model).diameter
    result = dict(command='python ' + ' '.join(sys.argv), model=str(model), training_diameter=training_diameter,
                  candidate_steps=dict(current=list(diameter_estimate.ESTIMATION_STEPS), wider=list(WIDE_STEPS)), table=summarise(rows, training_diameter), fallback_cases=fallback_cases(rows, training_diameter))
    write_atomic(arguments.out, lambda temporary: Path(temporary).write_text(json.dumps(result, indent=1)))
    for line in result['table']: print(json.dumps(line))
