"""Issue 38, the diameter estimate's doubt: can the estimate say when it is unsure, from what it already measured?

For each of the split model's 133 validation images under some of the robustness table's conditions, the estimate's
candidates (`diameter_estimate.diameter_candidates`) and its choice (`diameter_estimate.choose_diameter`) are recorded with the true
median diameter. Simple signs of doubt, fixed before looking at the outcome, are then scored against the estimates that
went wrong (more than a factor of 1.5 from the truth): how many wrong estimates each sign catches, and how many right
ones it flags for nothing.

    python experiments/diameter_unsure.py --data ../shared/dsb2018/stage1_train --out results/diameter_unsure.json   # about 8 min on 2 cores
"""
from __future__ import annotations

import argparse, json, math, os, sys, time, warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from generalisation import CONDITIONS  # the same transforms as the robustness table
from fcn_nuclei import normalize
from fcn_nuclei import diameter as diameter_estimate
from fcn_nuclei.files import write_json

WRONG = 1.5  # an estimate further than this factor from the true median diameter is wrong

def consistent(candidate: dict, training_diameter: float) -> bool:
    "A candidate whose objects measure within `CONSISTENCY` of the training diameter (as `choose_diameter` counts them)."
    return candidate['objects'] > 0 and np.isfinite(candidate['diameter']) and abs(math.log(candidate['diameter'] / training_diameter)) < math.log(diameter_estimate.CONSISTENCY)

def signs(candidates: list[dict], training_diameter: float, chosen: float) -> dict:
    "Signs of doubt from the candidates alone: no consistent candidate; few objects at the chosen scale; consistent candidates that imply different diameters."
    agreeing = [c for c in candidates if consistent(c, training_diameter)]
    implied = [c['diameter'] / c['scale'] for c in agreeing]
    at_choice = min(candidates, key=lambda c: abs(math.log(c['candidate'] / chosen))) if candidates else None
    return dict(no_consistent_candidate=not agreeing,
                few_objects=at_choice is None or at_choice['objects'] < 5,
                implied_spread=bool(implied) and max(implied) / min(implied) > 2.0)

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', nargs='?', type=Path, default=Path('results/model_split/model.keras'))
    parser.add_argument('--data', default='../shared/dsb2018/stage1_train')
    parser.add_argument('--conditions', nargs='+', default=['unchanged', 'size x0.5', 'size x2', 'size x3', 'brightness x0.25', 'gamma 2'])
    parser.add_argument('--out', type=Path, default=Path('results/diameter_unsure.json'))
    arguments = parser.parse_args()
    from fcn_nuclei.data import load_dsb
    from fcn_nuclei.models import load_model
    model, contract = load_model(arguments.model), normalize.model_normalization(arguments.model)
    config = json.loads((arguments.model.parent/'config.json').read_text())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        validation = [s for s in load_dsb(arguments.data, progress=False) if s.id in set(config['validation_ids'])]
    rows, training_diameter = [], contract.diameter
    for name in arguments.conditions:
        started = time.perf_counter()
        for sample in validation:
            changed = CONDITIONS[name](sample.image, sample.labels)
            if changed is None: continue
            image, labels = changed
            prepared, _ = contract.prepare(image, source=sample.id)
            candidates = diameter_estimate.diameter_candidates(model, prepared, training_diameter, skip_hopeless=False)  # every candidate, as when this ran
            chosen = diameter_estimate.choose_diameter(candidates, training_diameter)
            true = normalize.median_diameter(labels)
            if not np.isfinite(true): continue
            rows.append(dict(condition=name, id=sample.id, kind=sample.kind, true=round(float(true), 2), estimated=round(chosen, 2),
                             wrong=not 1 / WRONG <= chosen / true <= WRONG, **signs(candidates, training_diameter, chosen)))
        print(name, f"{time.perf_counter() - started:.0f} s", flush=True)
    table = []
    for sign in ('no_consistent_candidate', 'few_objects', 'implied_spread', 'any'):
        flagged = [row for row in rows if (any(row[s] for s in ('no_consistent_candidate', 'few_objects', 'implied_spread')) if sign == 'any' else row[sign])]
        wrong = [row for row in rows if row['wrong']]
        table.append(dict(sign=sign, flagged=len(flagged), flagged_wrong=sum(row['wrong'] for row in flagged), wrong=len(wrong), estimates=len(rows),
                          caught=round(sum(row['wrong'] for row in flagged) / max(len(wrong), 1), 3),
                          flagged_right=sum(not row['wrong'] for row in flagged)))
    result = dict(command='python ' + ' '.join(sys.argv), model=str(arguments.model), wrong_factor=WRONG, table=table,
                  wrong_by_condition={name: sum(row['wrong'] for row in rows if row['condition'] == name) for name in arguments.conditions}, rows=rows)
    write_json(arguments.out, result)
    for line in table: print(json.dumps(line))

if __name__ == '__main__': main()
