"""Issue 38, the wider-network lever: the split model's first cycle trained again with wider deep blocks, where the context of clusters and tissue lies.

    nice -n 19 python experiments/wider_deep.py --out runs/wider_deep      # about 75 min alone on 2 cores

The encoder's last two blocks go from (128, 128) to (192, 256) channels and the bottleneck from 256 to 384: 2.6 times
the weights (5.5 M against 2.1 M) for about 1.2 times the time of a training step (256x256 crops, batch 8, bfloat16),
since those blocks work at 1/8 and 1/16 of the image's side. The decoder mirrors the encoder as in the library.
The recipe is the first cycle's (`fcn-nuclei train --epochs 30 --crops-per-image 2 --precision mixed_bfloat16 --contours`,
seed 0), so the run compares with `results/model_split_cycle1`. The widths are set here, in the experiment, because they
are not the library's. Score it with `experiments/generalisation.py` after copying a `postprocess.json` beside it.
"""
import argparse, os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default='../shared/dsb2018/stage1_train')
    parser.add_argument('--out', required=True)
    parser.add_argument('--encoder', type=int, nargs=5, default=[16, 32, 64, 192, 256], help='channels of the five encoder blocks')
    parser.add_argument('--bottleneck', type=int, default=384, help='channels of the bottleneck')
    parser.add_argument('--epochs', type=int, default=30)
    arguments = parser.parse_args()
    import fcn_nuclei.models as models
    models.ENCODER_FILTERS = tuple(arguments.encoder)
    models.BOTTLENECK_FILTERS = arguments.bottleneck
    models.DECODER_FILTERS = tuple(reversed(models.ENCODER_FILTERS))
    from fcn_nuclei.train import train
    print(train(arguments.data, arguments.out, epochs=arguments.epochs, seed=0, crops_per_image=2, precision='mixed_bfloat16',
                contours=True, verbose=2))

if __name__ == '__main__': main()
