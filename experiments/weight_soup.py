"""A weight soup (Wortsman et al. 2022): the weights of models fine-tuned from one starting point averaged into one model, at no cost at inference.

    python experiments/weight_soup.py runs/soup/crop384_seed1/model.keras runs/soup/crop384_seed2/model.keras --out runs/soup/soup_seeds12

The models must share one architecture (here: third learning-rate cycles from `results/model_split` that differ only
in their seed). Every weight, batch normalisation's moving statistics included, is the plain mean of the models'.
The first model's `config.json` and `postprocess.json` are copied beside the soup, so that `experiments/generalisation.py`
scores it with the same input contract and post-processing.
"""
import argparse, json, os, shutil
from pathlib import Path
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('models', type=Path, nargs='+', help='.keras models of one architecture, config.json and postprocess.json beside the first')
    parser.add_argument('--out', type=Path, required=True, help='folder for the soup (model.keras, config.json, postprocess.json)')
    arguments = parser.parse_args()
    from fcn_nuclei.models import load_model
    models = [load_model(path) for path in arguments.models]
    weights = [model.get_weights() for model in models]
    if len({len(w) for w in weights}) != 1 or any(a.shape != b.shape for w in weights[1:] for a, b in zip(weights[0], w)):
        raise SystemExit('the models do not share one architecture')
    models[0].set_weights([np.mean([w[i] for w in weights], axis=0).astype(weights[0][i].dtype) for i in range(len(weights[0]))])
    arguments.out.mkdir(parents=True, exist_ok=True)
    models[0].save(arguments.out/'model.keras')
    for name in ('config.json', 'postprocess.json'): shutil.copy(arguments.models[0].parent/name, arguments.out/name)
    (arguments.out/'soup.json').write_text(json.dumps(dict(models=[str(p) for p in arguments.models]), indent=1) + '\n')
    print(f'{arguments.out/"model.keras"}: the mean of {len(models)} models')

if __name__ == '__main__': main()
