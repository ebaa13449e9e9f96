"""A third learning-rate cycle from `results/model_split`, with (or, as a control, without) two more augmentations aimed at the misses of 06_generalisation: posterisation (a dim 8-bit image under a gamma of 2 keeps few grey levels) and lost resolution (the crop shrunk and enlarged back, as at half size).

    python experiments/third_cycle.py --posterise 0.3 --lost-resolution 0.3 --out runs/cycle3_augmented   # about 22 min on 2 cores
    python experiments/third_cycle.py --out runs/cycle3_control                                          # the same cycle without them
    python experiments/third_cycle.py --crop 384 --crops-per-image 1 --threads 2 --out runs/cycle3_crop384  # larger crops, about the same pixels per epoch

Each run continues the split model for 12 epochs at a peak learning rate of 3e-4, seed 1, with the second cycle's recipe (`--gamma 0.9 0.4 2.5`). Score each with `experiments/generalisation.py` after copying `results/model_split/postprocess.json` beside it.
The augmentations wrap `fcn_nuclei.pipeline`'s intensity step here, in the experiment, because they were not kept in the library's recipe.
"""
import argparse, math, os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import tensorflow as tf

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--posterise', type=float, default=0.0, help='share of crops reduced to 4-64 grey levels')
    parser.add_argument('--lost-resolution', type=float, default=0.0, help='share of crops shrunk 1-2.5x and enlarged back')
    parser.add_argument('--data', default='../shared/dsb2018/stage1_train')
    parser.add_argument('--initial-weights', default='results/model_split/model.keras')
    parser.add_argument('--out', required=True)
    parser.add_argument('--seed', type=int, default=1, help='seed of the crops and augmentations')
    parser.add_argument('--crop', type=int, default=256, help='training crop side (a multiple of 32)')
    parser.add_argument('--crops-per-image', type=int, default=2, help='crops drawn from each image per epoch')
    parser.add_argument('--threads', type=int, default=1, help='TensorFlow intra-op threads (two runs side by side on 2 cores: 1 each)')
    arguments = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(arguments.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import fcn_nuclei.pipeline as pipeline
    from fcn_nuclei.train import train
    original = pipeline._vary_intensity
    def vary(seeds, image, gamma_setting=None):
        "The recipe's intensity changes, preceded by a lost resolution and followed by posterisation, each with its own chance."
        more = tf.random.experimental.stateless_split(seeds[7], 4)
        size = tf.shape(image)[:2]
        factor = tf.exp(tf.random.stateless_uniform([], more[2], 0.0, math.log(2.5)))
        small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) / factor), tf.int32), 1)
        image = tf.cond(tf.random.stateless_uniform([], more[3]) < arguments.lost_resolution,
                        lambda: tf.clip_by_value(tf.image.resize(tf.image.resize(image, small, antialias=True), size), 0.0, 255.0), lambda: image)
        image = original(seeds, image, gamma_setting) / 255.0
        levels = tf.round(tf.exp(tf.random.stateless_uniform([], more[0], math.log(4.0), math.log(64.0))))
        image = tf.cond(tf.random.stateless_uniform([], more[1]) < arguments.posterise, lambda: tf.round(image * (levels - 1)) / (levels - 1), lambda: image)
        return image * 255.0
    if arguments.posterise > 0 or arguments.lost_resolution > 0: pipeline._vary_intensity = vary
    print(train(arguments.data, arguments.out, epochs=12, learning_rate=3e-4, seed=arguments.seed, crop=arguments.crop, crops_per_image=arguments.crops_per_image, precision='mixed_bfloat16',
                contours=True, gamma=(0.9, 0.4, 2.5), initial_weights=arguments.initial_weights, verbose=2, overwrite=True))

if __name__ == '__main__': main()
