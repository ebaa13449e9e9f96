"""Post-processing benchmark: the time of each `probabilities_to_labels` method on one 4096x4096 probability map.

    python benchmarks/postprocess.py [--repeats 3] [--out results/benchmark_postprocess.json]

The map is the shipped model's (dsb2018) prediction for a 1024x1024 synthetic fluorescence field, tiled 4x4, so both
channels (nucleus and contour) are real network output. Each method runs with the settings it would have: the
distance watershed as tuned before the contour markers joined the grid, and the interior markers as shipped now.
Prints the seconds of every run and the ratio of medians, interior over watershed, measured in the same run.
"""
import argparse, json, os, platform, statistics, time
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np

from fcn_nuclei.postprocess import probabilities_to_labels
from fcn_nuclei.files import write_json
from fcn_nuclei.models import load_model
from fcn_nuclei.normalize import model_normalization
from fcn_nuclei.plan import predict_native
from fcn_nuclei.predict import load_postprocessing, pretrained_path
from fcn_nuclei.sources import synthesize_sample

SETTINGS = {'watershed': dict(method='watershed', threshold=0.5, min_size=8, min_distance=8)}

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', type=Path, default=Path(__file__).resolve().parents[1]/'results'/'benchmark_postprocess.json')
    arguments = parser.parse_args()
    model_path = pretrained_path(); model = load_model(model_path)
    shipped = load_postprocessing(model_path, model)
    settings = {**SETTINGS, shipped['method']: shipped}
    field = synthesize_sample(0, 1024, 1024)[0]
    probabilities, info = predict_native(model, field, model_normalization(model_path), diameter=18.05)
    tiled = np.tile(probabilities, (4, 4, 1))
    results = {}
    for name, setting in settings.items():
        times = []
        for _ in range(arguments.repeats):
            started = time.perf_counter(); labels = probabilities_to_labels(tiled, **setting); times.append(round(time.perf_counter() - started, 3))
        results[name] = dict(setting=setting, seconds=times, seconds_median=statistics.median(times), nuclei=int(labels.max()))
        print(json.dumps({name: results[name]}), flush=True)
    ratio = results[shipped['method']]['seconds_median'] / results['watershed']['seconds_median']
    summary = dict(command='python benchmarks/postprocess.py', map='4096x4096, 2 channels', machine=f"{os.cpu_count()} CPU cores, {platform.machine()}",
                   date=time.strftime('%Y-%m-%d'), results=results, ratio_shipped_to_watershed=round(ratio, 3))
    write_json(arguments.out, summary)
    print(f"{shipped['method']} / watershed: {ratio:.2f}x")
