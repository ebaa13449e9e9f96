"""Issue 37: the diameter estimate's passes through the network as one traced graph (`call_model(..., traced=True)`) instead of eagerly, layer by layer. Same choices?

    python experiments/graph_call.py --data ../shared/dsb2018/stage1_train --out results/graph_call.json    # about 10 min on 2 cores

For each of the split model's 133 validation images: `predict_image` with the shipped recipe (diameter estimated, the model's own
post-processing), once with the estimate's passes run eagerly (the code before) and once traced (the labels are predicted eagerly
both times); the estimated diameters compared, the labels scored against the truth with the DSB metric, and the time of each.
"""
import argparse, json, os, platform, time
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import warnings
import numpy as np

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='results/model_split/model.keras')
    parser.add_argument('--data', required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--limit', type=int, default=None)
    arguments = parser.parse_args()
    import fcn_nuclei.models as models
    from fcn_nuclei.data import load_dsb
    from fcn_nuclei.evaluate import object_scores
    from fcn_nuclei.predict import predict_image
    graph_call = models.call_model
    eager_call = lambda model, batch, traced=False: graph_call(model, batch, False)  # the code before: every pass eager
    model = models.load_model(arguments.model)
    config = json.loads(open(os.path.join(os.path.dirname(arguments.model), 'config.json')).read())
    validation = set(config['validation_ids'])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = [s for s in load_dsb(arguments.data, progress=False) if s.id in validation][:arguments.limit]
    rows = []
    for sample in samples:
        row = dict(id=sample.id)
        for name, call in (('eager', eager_call), ('graph', graph_call)):
            models.call_model = call  # read by predict_padded, which the estimate calls
            started = time.perf_counter()
            labels, info = predict_image(model, sample.image, source=sample.id)
            row[f'{name}_seconds'] = round(time.perf_counter() - started, 3)
            row[f'{name}_diameter'], row[f'{name}_dsb'] = info['diameter'], object_scores(sample.labels, labels)['dsb']
            if name == 'eager': eager_labels = labels
        row['labels_identical'] = bool((eager_labels == labels).all())
        rows.append(row)
        print(json.dumps(row), flush=True)
    models.call_model = graph_call
    mean = lambda key: float(np.mean([row[key] for row in rows]))
    summary = dict(images=len(rows), model=arguments.model, machine=f"{os.cpu_count()} CPU cores, {platform.machine()}",
                   command='python experiments/graph_call.py ' + ' '.join(f'--{k} {v}' for k, v in vars(arguments).items() if v is not None),
                   diameters_changed=sum(row['eager_diameter'] != row['graph_diameter'] for row in rows),
                   labels_changed=sum(not row['labels_identical'] for row in rows),
                   dsb_eager=mean('eager_dsb'), dsb_graph=mean('graph_dsb'),
                   seconds_eager=round(sum(row['eager_seconds'] for row in rows), 1), seconds_graph=round(sum(row['graph_seconds'] for row in rows), 1))
    print(json.dumps(summary))
    with open(arguments.out, 'w') as file: json.dump(dict(summary=summary, rows=rows), file, indent=1)

if __name__ == '__main__': main()
