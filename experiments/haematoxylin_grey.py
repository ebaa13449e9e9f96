"""Stained tissue, on the input side: the haematoxylin stain shown to the network as a fluorescence image (issue 38, one lever alone).

The network learnt nuclei mostly from fluorescence: 546 of the 664 training images are grey, 86 training images are
stained tissue from a few slides. Haematoxylin stains nuclei; unmixed from the colour image (optical density, scikit-image's
haematoxylin-eosin-DAB matrix, Ruifrok & Johnston 2001), its density is a grey image of bright nuclei on a dark ground, which
is what most of the training set looks like. This lever needs no training, so it is measured on the split model as it is.

Only images the model's channel rule reads as stained tissue (`rgb`) are scored; the others are left out of every row.
Rows, on those images: `unchanged`, and `haematoxylin as fluorescence` (the density, stretched so that its 99.9th
percentile is 255, in all three channels); both with the true median diameter given, which separates the
network's part from the diameter estimate's; the two stain shifts of `stain_normalisation.py`, each both ways.

    python experiments/haematoxylin_grey.py results/model_split/model.keras --data ../shared/dsb2018/stage1_train --out results/haematoxylin_grey.json
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from skimage.color import hed_from_rgb

sys.path.insert(0, str(Path(__file__).parent))
from stain_normalisation import SHIFTS, only_tissue, optical_density, shift_stains, tissue_experiment

TOP_PERCENTILE = 99.9  # the haematoxylin density shown as 255

def haematoxylin_grey(image: np.ndarray) -> np.ndarray:
    "(H, W, 3) uint8 stained tissue -> (H, W, 3) uint8 grey: the haematoxylin density, bright nuclei on a dark ground."
    density = np.maximum(optical_density(image) @ hed_from_rgb[:, 0], 0).reshape(image.shape[:2])
    top = np.percentile(density, TOP_PERCENTILE)
    grey = np.clip(255 * density / max(top, 1e-6) + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)

def haematoxylin_conditions(samples, config):
    "The rows of this experiment."
    conditions = {'unchanged': only_tissue(lambda image: image), 'haematoxylin as fluorescence': only_tissue(haematoxylin_grey)}
    conditions['unchanged, true diameter given'] = conditions['unchanged']  # the estimate's part in the difference
    conditions['haematoxylin as fluorescence, true diameter given'] = conditions['haematoxylin as fluorescence']
    for name, (h, e) in SHIFTS.items():
        conditions[name] = only_tissue(lambda image, h=h, e=e: shift_stains(image, h, e))
        conditions[f'{name}, haematoxylin as fluorescence'] = only_tissue(lambda image, h=h, e=e: haematoxylin_grey(shift_stains(image, h, e)))
    return conditions, {}

if __name__ == '__main__':
    tissue_experiment(__doc__.splitlines()[0], haematoxylin_conditions)
