"""All seven decoders side by side on the same validation crops, from the per-decoder figures of experiments/decoders.py.

    python experiments/decoders_figure.py

experiments/decoders.py draws, for each decoder, the same three validation crops (image, true mask, predicted
probability of its first seed's run) into nbs/images/decoder_<variant>.png. This script cuts the panels out of those
figures (found as the non-white boxes of the first one) and lays them out as one figure, image and true mask first,
then each decoder's probability titled with that run's validation pixel IoU from results/decoders.json:
nbs/images/decoders_side_by_side.png.
"""
import json
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

repository = Path(__file__).resolve().parents[1]
NAMES = {'naive': 'naive x32 (FCN-32s)', 'naive_x16': "the article's x16", 'fcn16s': 'FCN-16s', 'fcn8s': 'FCN-8s',
         'stepwise': 'stepwise', 'article': "article's decoder", 'skips': 'skips at every scale'}

def spans(profile: np.ndarray, minimum: int = 100) -> list[tuple[int, int]]:
    "Runs of indices where more than `minimum` pixels are not white: the panels along one axis."
    found, start = [], None
    for index, busy in enumerate(profile > minimum):
        if busy and start is None: start = index
        if not busy and start is not None: found.append((start, index)); start = None
    if start is not None: found.append((start, len(profile)))
    return found

def panels(path: Path) -> list[list[np.ndarray]]:
    "The figure's panels, rows of [image, true mask, probability], each cut to the common panel size."
    figure = np.asarray(Image.open(path).convert('RGB'))
    busy = figure.min(axis=-1) < 250
    columns = [span for span in spans(busy.sum(axis=0)) if span[1] - span[0] > 64]
    rows = [span for span in spans(busy.sum(axis=1)) if span[1] - span[0] > 64]
    side = min(min(b - a for a, b in columns), min(b - a for a, b in rows))
    if len(columns) != 3 or len(rows) < 1: raise SystemExit(f"{path}: expected 3 columns of panels, found {len(columns)}")
    return [[figure[top:top + side, left:left + side] for left, _ in columns] for top, _ in rows]

if __name__ == '__main__':
    results = json.loads((repository/'results'/'decoders.json').read_text())
    variants = [variant for variant in NAMES if (repository/'nbs'/'images'/f'decoder_{variant}.png').is_file()]
    cut = {variant: panels(repository/'nbs'/'images'/f'decoder_{variant}.png') for variant in variants}
    rows = len(cut[variants[0]])
    figure, axes = plt.subplots(rows, 2 + len(variants), figsize=(1.9 * (2 + len(variants)), 2.0 * rows + 0.5), squeeze=False)
    for row in range(rows):
        cells = [cut[variants[0]][row][0], cut[variants[0]][row][1]] + [cut[variant][row][2] for variant in variants]
        titles = ['image', 'true mask'] + [f"{NAMES[v]}\nIoU {results['variants'][v]['validation_iou_seeds'][0]:.2f}" for v in variants]
        for axis, cell, title in zip(axes[row], cells, titles):
            axis.imshow(cell); axis.axis('off')
            if row == 0: axis.set_title(title, fontsize=9)
    figure.suptitle(f"Seven decoders, one budget ({results['budget']}, seed {results['figures_seed']}): predicted nucleus probability on the same validation crops", fontsize=10)
    figure.tight_layout()
    out = repository/'nbs'/'images'/'decoders_side_by_side.png'
    figure.savefig(out, dpi=72, bbox_inches='tight')
    print(out)
