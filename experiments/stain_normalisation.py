"""Stained tissue, on the input side: Macenko stain normalisation before the contract (issue 38, one lever alone).

The DSB's stained tissue comes from a few slides; tissue from other labs has other stains. Stain normalisation
(Macenko et al. 2009) estimates an image's own haematoxylin and eosin colours from its optical density and repaints
the image with reference colours and concentration ranges, here the medians over the split model's colour *training*
images. It needs no training, so it is measured on the split model as it is.

Only images the model's channel rule reads as stained tissue (`rgb`) are normalised and scored; the others are left
out of every row. Rows, on those images:

- `unchanged` and `unchanged, stains normalised`;
- two stain shifts fixed before looking at the outcome, as another lab's staining might look (in scikit-image's HED
  space: `pale haematoxylin, strong eosin` = haematoxylin x0.6 and eosin x1.5; `strong haematoxylin, pale eosin` =
  x1.5 and x0.6), each with and without the normalisation.

    python experiments/stain_normalisation.py results/model_split/model.keras --data ../shared/dsb2018/stage1_train --out results/stain_normalisation.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from skimage.color import hed_from_rgb, rgb_from_hed

sys.path.insert(0, str(Path(__file__).parent))
import generalisation
from fcn_nuclei.data import load_dsb
from fcn_nuclei.files import write_atomic
from fcn_nuclei.normalize import detect_channel_rule

BACKGROUND_DENSITY = 0.15  # optical density below which a pixel is background (Macenko's beta)
ANGLE_PERCENTILE = 1.0  # robust extremes of the stain angles (Macenko's alpha, in percent)
CONCENTRATION_PERCENTILE = 99.0  # the concentration range matched to the reference

def optical_density(image: np.ndarray) -> np.ndarray:
    "(H, W, 3) uint8 -> (H*W, 3) optical density, -log((I + 1) / 256)."
    return -np.log((image.reshape(-1, 3).astype(np.float64) + 1) / 256)

def stain_vectors(image: np.ndarray) -> np.ndarray | None:
    "Macenko's two stain colours of a stained image, (2, 3) unit rows in optical density, haematoxylin first; None when too few stained pixels."
    density = optical_density(image)
    tissue = density[(density > BACKGROUND_DENSITY).all(axis=1)]
    if len(tissue) < 100: return None
    _, vectors = np.linalg.eigh(np.cov(tissue.T))
    plane = vectors[:, 1:3]  # the two directions of largest spread
    projected = tissue @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(angles, [ANGLE_PERCENTILE, 100 - ANGLE_PERCENTILE])
    stains = np.stack([plane @ [np.cos(low), np.sin(low)], plane @ [np.cos(high), np.sin(high)]])
    stains *= np.sign(stains.sum(axis=1, keepdims=True))  # optical densities are positive
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    return stains if stains[0, 0] > stains[1, 0] else stains[::-1]  # haematoxylin absorbs more red than eosin does

def concentrations(image: np.ndarray, stains: np.ndarray) -> np.ndarray:
    "(H*W, 2) stain concentrations of every pixel, least squares on the optical density."
    return np.linalg.lstsq(stains.T, optical_density(image).T, rcond=None)[0].T

def reference_stains(images: list[np.ndarray]) -> dict:
    "The reference: median stain colours and median concentration ranges over stained training images."
    vectors, ranges = [], []
    for image in images:
        stains = stain_vectors(image)
        if stains is None: continue
        vectors.append(stains); ranges.append(np.percentile(concentrations(image, stains), CONCENTRATION_PERCENTILE, axis=0))
    stains = np.median(vectors, axis=0); stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    return dict(stains=stains.tolist(), ranges=np.median(ranges, axis=0).tolist(), images=len(vectors))

def normalise_stains(image: np.ndarray, reference: dict) -> np.ndarray:
    "The image repainted with the reference's stain colours, each stain's concentration scaled to the reference range."
    stains = stain_vectors(image)
    if stains is None: return image
    amounts = concentrations(image, stains)
    amounts *= np.asarray(reference['ranges']) / np.maximum(np.percentile(amounts, CONCENTRATION_PERCENTILE, axis=0), 1e-6)
    density = np.maximum(amounts, 0) @ np.asarray(reference['stains'])
    return np.clip(256 * np.exp(-density) - 1 + 0.5, 0, 255).astype(np.uint8).reshape(image.shape)

def shift_stains(image: np.ndarray, haematoxylin: float, eosin: float) -> np.ndarray:
    "Another lab's staining, roughly: haematoxylin and eosin scaled in scikit-image's HED space."
    density = optical_density(image)
    hed = np.maximum(density @ hed_from_rgb, 0) * [haematoxylin, eosin, 1.0]
    return np.clip(256 * np.exp(-(hed @ rgb_from_hed)) - 1 + 0.5, 0, 255).astype(np.uint8).reshape(image.shape)

def only_tissue(transform):
    "A condition of `generalisation.robustness`: `transform` on the images the channel rule reads as stained tissue (`rgb`); the others left out (None)."
    return lambda image, labels: (transform(image), labels) if detect_channel_rule(image) == 'rgb' else None

def tissue_experiment(description: str, # The command's description
                      conditions_of, # (samples, the model's config) -> (conditions, name -> transform of (image, labels); more fields for the JSON)
                     ):
    "The command line of the stained-tissue experiments: a model, `--data` and `--out`; the conditions scored on the model's validation images; the JSON written."
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('model', type=Path, help='a .keras model with config.json and postprocess.json beside it')
    parser.add_argument('--data', required=True, help='the DSB training set')
    parser.add_argument('--out', type=Path, required=True, help='JSON file to write')
    arguments = parser.parse_args()
    started = time.perf_counter()
    samples = load_dsb(arguments.data)
    conditions, extra = conditions_of(samples, json.loads((arguments.model.parent/'config.json').read_text()))
    generalisation.CONDITIONS.clear(); generalisation.CONDITIONS.update(conditions)
    result = generalisation.robustness(arguments.model, samples, list(conditions))
    tree = subprocess.run(['git', 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout.strip()
    summary = dict(command=' '.join(sys.argv), tree=tree, **extra, seconds=round(time.perf_counter() - started), **result)
    write_atomic(arguments.out, lambda temporary: temporary.write_text(json.dumps(summary, indent=1) + '\n'))

SHIFTS = {'pale haematoxylin, strong eosin': (0.6, 1.5), 'strong haematoxylin, pale eosin': (1.5, 0.6)}  # fixed before looking at the outcome

def normalisation_conditions(samples, config):
    "The rows of this experiment, and the reference stains."
    validation = set(config['validation_ids'])
    reference = reference_stains([s.image for s in samples if s.id not in validation and detect_channel_rule(s.image) == 'rgb'])
    normalised = lambda image: normalise_stains(image, reference)
    conditions = {'unchanged': only_tissue(lambda image: image), 'unchanged, stains normalised': only_tissue(normalised)}
    for name, (h, e) in SHIFTS.items():
        conditions[name] = only_tissue(lambda image, h=h, e=e: shift_stains(image, h, e))
        conditions[f'{name}, stains normalised'] = only_tissue(lambda image, h=h, e=e: normalised(shift_stains(image, h, e)))
    return conditions, dict(reference=reference)

if __name__ == '__main__':
    tissue_experiment(__doc__.splitlines()[0], normalisation_conditions)
