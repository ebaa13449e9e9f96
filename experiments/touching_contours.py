"""Dense clusters, one lever alone: a third learning-rate cycle from `results/model_split` in which the contour channel's loss weighs five times more where two nuclei touch (issue 38).

    nice -n 19 python experiments/touching_contours.py --out runs/cycle3_touching > runs/cycle3_touching.log 2>&1     # about 25 min on 2 cores
    cp results/model_split/postprocess.json runs/cycle3_touching/
    python experiments/generalisation.py runs/cycle3_touching/model.keras --data ../shared/dsb2018/stage1_train --out results/generalisation_touching.json
    python experiments/touching_contours.py --compare results/generalisation.json results/generalisation_touching.json --out results/touching_dense.json

`--compare` scores the unchanged rows of two robustness tables on the dense validation images: the quarter whose true
contours touch another nucleus most often (the share of contour pixels within `REACH` of another nucleus, from the
labels alone, fixed before any score is read).

Dense clusters of small nuclei are merged into few objects: the post-processing seeds one object per interior marker (the
nucleus channel less the contour channel), so two touching nuclei become one wherever the network draws no contour
between them. Those pixels are few in a crop, and the loss, averaged over every pixel, barely sees them. Here the weight
map of U-Net (Ronneberger et al. 2015), reduced to its core: the contour target's pixels that lie within 2 pixels of
another nucleus weigh `--weight` times the others in the contour channel's cross-entropy (the Dice term is unchanged).

How the weight reaches the loss: the contour target holds 2 instead of 1 on those pixels (`pipeline.targets`, wrapped
here); the crop follows targets by nearest neighbour, so the value survives; the loss reads it and scores the contour
as 1. The cycle is `third_cycle.py`'s control otherwise (12 epochs, peak learning rate 3e-4, seed 1, 2 crops per image,
bfloat16, contours, `--gamma 0.9 0.4 2.5`): with `--weight 1` the run is that control.

Result (2026-12-07, experiments/README.md): not kept. All 133 validation images 0.556 against the split model's 0.562; the
dense quarter 0.381 against 0.394 (tuned anew: 0.560 and 0.385); size x0.5 0.494 against 0.509.
"""
import argparse, os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np
from scipy import ndimage
import keras
from keras import ops

REACH = 2  # pixels: a contour pixel this close to another nucleus is where two nuclei touch
SETTINGS = dict(weight=5.0)

def touching_contours(labels: np.ndarray) -> np.ndarray:
    "(H, W) uint8: 1 on each nucleus's inner outline, 2 where that outline lies within `REACH` pixels of another nucleus."
    from skimage.segmentation import find_boundaries
    outline = find_boundaries(labels, mode='inner')
    labels, size = labels.astype(np.int64), 2 * REACH + 1
    empty = labels.max() + 1  # above every label: the background, for the lowest label nearby
    highest = ndimage.maximum_filter(labels, size=size)
    lowest = ndimage.minimum_filter(np.where(labels > 0, labels, empty), size=size)
    other = (labels > 0) & (((highest != labels) & (highest > 0)) | ((lowest != labels) & (lowest < empty)))
    return np.where(outline & other, 2, outline).astype(np.uint8)

@keras.saving.register_keras_serializable(package='experiments')
def touching_loss(y_true, y_pred):
    "The library's `bce_dice_loss`, the contour channel's cross-entropy weighted `SETTINGS['weight']` times on touching pixels (target 2)."
    from fcn_nuclei.train import soft_dice_loss
    y_true = ops.cast(y_true, y_pred.dtype)
    contour = y_true[..., 1:2]
    binary = ops.concatenate([y_true[..., :1], ops.minimum(contour, 1.0)], axis=-1)
    weights = ops.concatenate([ops.ones_like(contour), 1.0 + (SETTINGS['weight'] - 1.0) * ops.cast(contour > 1.5, y_pred.dtype)], axis=-1)
    crossentropy = keras.losses.binary_crossentropy(binary[..., None], y_pred[..., None])  # (N, H, W, C)
    return ops.mean(crossentropy * weights, axis=(1, 2, 3)) + soft_dice_loss(binary, y_pred)

def install():
    "Wrap `fcn_nuclei.pipeline.targets` (contours 0/1/2) and add the loss to `fcn_nuclei.train.LOSSES` as 'touching'."
    import fcn_nuclei.pipeline as pipeline, fcn_nuclei.train as training
    def targets(sample, contours=False):
        "The library's targets, the contour channel 2 where two nuclei touch."
        channels = [sample.mask] + ([touching_contours(sample.labels)] if contours else [])
        return np.stack(channels, axis=-1).astype(np.uint8)
    pipeline.targets = targets
    training.LOSSES['touching'] = touching_loss
    return pipeline

def compare(paths, data: str, out: str):
    "Mean DSB of each table's unchanged rows (and, where scored, with the true diameter given) on all its images, on the dense quarter and on the others; written to `out` as JSON."
    import json
    from fcn_nuclei.data import load_dsb
    tables = [next(iter(json.load(open(path))['models'].values())) for path in paths]  # each file's first model
    ids = set.intersection(*({row['id'] for row in table['rows'] if row['condition'] == 'unchanged'} for table in tables))
    share = {}
    for sample in load_dsb(data, ids=sorted(ids), progress=False):
        contours = touching_contours(sample.labels)
        share[sample.id] = float((contours == 2).sum() / max((contours > 0).sum(), 1))
    dense = sorted(ids, key=lambda image_id: -share[image_id])[:len(ids) // 4]
    result = dict(command=' '.join(os.sys.argv), images=len(ids), dense_images=len(dense), dense_touching_share_min=min(share[i] for i in dense), tables=[])
    for path, table in zip(paths, tables):
        row = dict(path=str(path))
        for condition, key in (('unchanged', 'dsb'), ('unchanged, true diameter given', 'dsb_true_diameter')):
            score = {row['id']: row['dsb'] for row in table['rows'] if row['condition'] == condition}
            if not set(ids) <= set(score): continue
            row.update({key: float(np.mean([score[i] for i in ids])), f'{key}_dense': float(np.mean([score[i] for i in dense])),
                        f'{key}_other': float(np.mean([score[i] for i in ids if i not in set(dense)]))})
        result['tables'].append(row)
    result['dense_ids'] = dense
    print(json.dumps(result, indent=1))
    with open(out + '.tmp', 'w') as file: file.write(json.dumps(result, indent=1) + '\n')
    os.replace(out + '.tmp', out)

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weight', type=float, default=5.0, help="weight of a touching contour pixel in the contour channel's cross-entropy")
    parser.add_argument('--data', default='../shared/dsb2018/stage1_train')
    parser.add_argument('--initial-weights', default='results/model_split/model.keras')
    parser.add_argument('--out', required=True, help='run folder (training) or JSON file (--compare)')
    parser.add_argument('--compare', nargs='+', help='robustness tables (JSON of experiments/generalisation.py) to score on the dense images instead of training')
    parser.add_argument('--threads', type=int, default=2, help='TensorFlow intra-op threads')
    parser.add_argument('--epochs', type=int, default=12)
    arguments = parser.parse_args()
    if arguments.compare: return compare(arguments.compare, arguments.data, arguments.out)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(arguments.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    SETTINGS['weight'] = arguments.weight
    install()
    from fcn_nuclei.train import train
    print(train(arguments.data, arguments.out, epochs=arguments.epochs, learning_rate=3e-4, seed=1, crops_per_image=2, precision='mixed_bfloat16',
                contours=True, gamma=(0.9, 0.4, 2.5), initial_weights=arguments.initial_weights, verbose=2, overwrite=True, loss='touching'))

if __name__ == '__main__': main()
