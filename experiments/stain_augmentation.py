"""Issue 38, one lever alone: a third learning-rate cycle from `results/model_split` in which stained-tissue crops have their stains varied in HED space (Tellez et al. 2019), so that the network sees other stains than the DSB's few tissue slides.

    nice -n 19 python experiments/stain_augmentation.py --out runs/cycle3_stain > runs/cycle3_stain.log 2>&1    # about 25 min on 2 cores
    python experiments/stain_augmentation.py --out runs/stain_preview --preview 8                                # a PNG of 8 colour crops, before/after, no training
    cp results/model_split/postprocess.json runs/cycle3_stain/
    nice -n 19 python experiments/generalisation.py runs/cycle3_stain/model.keras --data ../shared/dsb2018/stage1_train --out results/generalisation_stain.json

The cycle is `experiments/third_cycle.py`'s control (12 epochs, peak learning rate 3e-4, seed 1, 2 crops per image, bfloat16, contours,
`--gamma 0.9 0.4 2.5`) with one change, made before the library's random gamma, blur, noise and grey: with chance `--chance`, a crop
whose channels differ (colour, by the mean spread between its brightest and darkest channel, more than `COLOUR_SPREAD` grey levels) is
taken to optical density, OD = -log(rgb), unmixed into haematoxylin, eosin and DAB with scikit-image's matrix (`rgb2hed`'s), each stain
scaled by its own factor in [1 - `--sigma`, 1 + `--sigma`] and shifted by its own offset in [-`--bias`, `--bias`] (OD units), and mixed back
(`hed2rgb`'s matrix). Grey crops (fluorescence, brightfield) are left alone: with `--chance 0` the crops are those of the control, bit for bit.
"""
import argparse, os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np
import tensorflow as tf
from skimage.color import hed_from_rgb, rgb_from_hed

COLOUR_SPREAD = 8.0  # grey levels (0..255): mean over pixels of (brightest channel - darkest); grey crops are 0, the DSB's tissue 20 or more

def vary_stains(seeds, image, chance: float, sigma: float, bias: float):
    "An (H, W, 3) crop in 0..255 with its haematoxylin, eosin and DAB each scaled and shifted in optical density, with chance `chance` if the crop is colour; `seeds` (3, 2) stateless seeds."
    spread = tf.reduce_mean(tf.reduce_max(image, axis=-1) - tf.reduce_min(image, axis=-1))
    apply = tf.logical_and(spread > COLOUR_SPREAD, tf.random.stateless_uniform([], seeds[0]) < chance)
    def varied():
        density = -tf.math.log(tf.maximum(image, 1.0) / 255.0)  # 0 for white, about 5.5 for black
        stains = tf.reshape(density, [-1, 3]) @ tf.constant(hed_from_rgb, tf.float32)
        scale = tf.random.stateless_uniform([3], seeds[1], 1.0 - sigma, 1.0 + sigma)
        shift = tf.random.stateless_uniform([3], seeds[2], -bias, bias)
        stains = tf.maximum(stains * scale + shift, 0.0)
        density = tf.reshape(stains @ tf.constant(rgb_from_hed, tf.float32), tf.shape(image))
        return tf.clip_by_value(255.0 * tf.exp(-density), 0.0, 255.0)
    return tf.cond(apply, varied, lambda: image)

SETTINGS = dict(chance=0.8, sigma=0.3, bias=0.05)  # read when the pipeline's map function is traced

def install(chance: float, sigma: float, bias: float):
    "Wrap `fcn_nuclei.pipeline._vary_intensity` so that colour training crops have their stains varied first; a second call only changes the settings. Returns the pipeline module."
    import fcn_nuclei.pipeline as pipeline
    SETTINGS.update(chance=chance, sigma=sigma, bias=bias)
    if getattr(pipeline, '_stain_installed', False): return pipeline
    original = pipeline._vary_intensity
    def vary(seeds, image, gamma_setting=None):
        "Stains varied (seeds drawn from the library's eighth, unused by it), then the recipe's intensity changes."
        more = tf.random.experimental.stateless_split(seeds[7], 3)
        if SETTINGS['chance'] > 0: image = vary_stains(more, image, SETTINGS['chance'], SETTINGS['sigma'], SETTINGS['bias'])
        return original(seeds, image, gamma_setting)
    pipeline._vary_intensity = vary
    pipeline._stain_installed = True
    return pipeline

def preview(arguments, count: int):
    "Save `count` colour training crops, each without and with three draws of the stain variation, as a PNG under `--out`."
    import json, matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from fcn_nuclei.data import load_dsb
    from fcn_nuclei.normalize import Normalization, prepare_sample
    config = json.loads(open(os.path.join(os.path.dirname(arguments.initial_weights), 'config.json')).read())
    normalization = Normalization.from_config(config)
    held_out = set(config['validation_ids'])
    samples = [s for s in load_dsb(arguments.data, progress=False) if s.id not in held_out and s.kind.startswith('colour')]
    chosen = [prepare_sample(s, normalization) for s in samples[::max(1, len(samples) // count)][:count]]
    figure, axes = plt.subplots(len(chosen), 4, figsize=(12, 3 * len(chosen)), squeeze=False)
    spreads = []
    for row, sample in zip(axes, chosen):
        crop = tf.constant(np.asarray(sample.image, np.float32)[:256, :256, :3])
        spreads.append(float(tf.reduce_mean(tf.reduce_max(crop, -1) - tf.reduce_min(crop, -1))))
        row[0].imshow(crop.numpy().astype(np.uint8)); row[0].set_title(f'colour crop (spread {spreads[-1]:.0f})', fontsize=8)
        for column, seed in enumerate((1, 2, 3), start=1):
            seeds = tf.random.experimental.stateless_split(tf.constant([seed, 7], tf.int64), 3)
            row[column].imshow(vary_stains(seeds, crop, 1.0, arguments.sigma, arguments.bias).numpy().astype(np.uint8))
            row[column].set_title(f'stains varied, draw {seed}', fontsize=8)
    for axis in axes.ravel(): axis.set_axis_off()
    figure.tight_layout(); os.makedirs(arguments.out, exist_ok=True)
    figure.savefig(os.path.join(arguments.out, 'crops.png'), dpi=55)
    print(json.dumps(dict(spreads=spreads, figure=os.path.join(arguments.out, 'crops.png'))))

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--chance', type=float, default=0.8, help='share of colour crops whose stains are varied')
    parser.add_argument('--sigma', type=float, default=0.3, help='each stain scaled by a factor in [1 - sigma, 1 + sigma]')
    parser.add_argument('--bias', type=float, default=0.05, help='each stain shifted by an offset in [-bias, bias] (optical density)')
    parser.add_argument('--data', default='../shared/dsb2018/stage1_train')
    parser.add_argument('--initial-weights', default='results/model_split/model.keras')
    parser.add_argument('--out', required=True)
    parser.add_argument('--threads', type=int, default=2, help='TensorFlow intra-op threads')
    parser.add_argument('--epochs', type=int, default=12, help='a smoke test: fewer epochs (the experiment: 12)')
    parser.add_argument('--preview', type=int, default=0, help='instead of training: save N colour crops as a PNG under --out')
    arguments = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(arguments.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if arguments.preview: return preview(arguments, arguments.preview)
    install(arguments.chance, arguments.sigma, arguments.bias)
    from fcn_nuclei.train import train
    print(train(arguments.data, arguments.out, epochs=arguments.epochs, learning_rate=3e-4, seed=1, crops_per_image=2, precision='mixed_bfloat16',
                contours=True, gamma=(0.9, 0.4, 2.5), initial_weights=arguments.initial_weights, verbose=2, overwrite=True))

if __name__ == '__main__': main()
