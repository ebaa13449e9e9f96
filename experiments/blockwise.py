"""Blockwise segmentation against whole-image segmentation on the validation images, tiled artificially small.

    python experiments/blockwise.py --data ../shared/dsb2018/stage1_train [--block 256] [--margin 192]

For each of the 133 validation images of the split: labels of the whole image (`predict_image`) and labels made block
by block (`segment_blockwise`, cores of --block working pixels, so that even a 256x256 image is cut into blocks), both
with the shipped model and its estimated diameter. Scores the blockwise labels against the whole-image ones with the DSB
metric, and counts the whole-image nuclei that cross a block border and come back as one object (IoU >= 0.5 with one
blockwise nucleus). Writes results/blockwise.json.
"""
import argparse, json, os, platform, sys, time, warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np

from fcn_nuclei.blockwise import plan_blocks, segment_blockwise, LazyImage
from fcn_nuclei.plan import plan_input
from fcn_nuclei.data import load_dsb, split_ids
from fcn_nuclei.evaluate import intersection_table, object_scores
from fcn_nuclei.files import write_json
from fcn_nuclei.normalize import model_normalization
from fcn_nuclei.predict import load_postprocessing, predict_image, pretrained_path
from fcn_nuclei.models import load_model

repository = Path(__file__).resolve().parents[1]
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--data', required=True)
parser.add_argument('--model', default=str(pretrained_path()))
parser.add_argument('--block', type=int, default=256)
parser.add_argument('--margin', type=int, default=192)
parser.add_argument('--out', type=Path, default=repository/'results'/'blockwise.json')
arguments = parser.parse_args()

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    samples = load_dsb(arguments.data, progress=False)
_, validation_ids = split_ids(samples, seed=0)
validation = [sample for sample in samples if sample.id in set(validation_ids)]
model, normalization = load_model(arguments.model), model_normalization(arguments.model)
postprocessing = load_postprocessing(arguments.model, model)

def border_mask(blocks, shape):
    "True on the native pixels next to a core border."
    mask = np.zeros(shape, bool)
    for block in blocks:
        top, left, bottom, right = block.core
        if top: mask[top - 1:top + 1, left:right] = True
        if left: mask[top:bottom, left - 1:left + 1] = True
    return mask

rows, started = [], time.perf_counter()
for sample in validation:
    whole, info = predict_image(model, sample.image, postprocessing, normalization=normalization)
    blockwise, block_info = segment_blockwise(model, sample.image, normalization, postprocessing, block=arguments.block, margin=arguments.margin)
    plan = plan_input(model, LazyImage(sample.image), normalization, diameter=info['diameter'])
    borders = border_mask(plan_blocks(plan.height, plan.width, *plan.working_size, arguments.block, arguments.margin), whole.shape)
    crossing = np.unique(whole[borders & (whole > 0)])
    iou = intersection_table(whole, blockwise)[0]  # IoU of every whole-image nucleus with every blockwise one
    whole_once = int(sum(1 for label in crossing if iou.shape[1] and (iou[label - 1] >= 0.5).any()))
    score = object_scores(whole, blockwise)['dsb']
    rows.append(dict(id=sample.id, size=list(sample.image.shape[:2]), blocks=block_info['blocks'], whole_nuclei=int(whole.max()), blockwise_nuclei=block_info['nuclei'],
                     dsb_against_whole=round(float(score), 4), crossing_nuclei=int(crossing.size), crossing_kept_whole=whole_once,
                     truth_dsb_whole=round(float(object_scores(sample.labels, whole)['dsb']), 4), truth_dsb_blockwise=round(float(object_scores(sample.labels, blockwise)['dsb']), 4)))
    print(json.dumps(rows[-1]), flush=True)
crossing_total = sum(row['crossing_nuclei'] for row in rows)
summary = dict(images=len(rows), blocks=sum(row['blocks'] for row in rows), mean_dsb_against_whole=round(float(np.mean([row['dsb_against_whole'] for row in rows])), 4),
               min_dsb_against_whole=min(row['dsb_against_whole'] for row in rows), crossing_nuclei=crossing_total,
               crossing_kept_whole=round(sum(row['crossing_kept_whole'] for row in rows) / max(crossing_total, 1), 4),
               truth_dsb_whole=round(float(np.mean([row['truth_dsb_whole'] for row in rows])), 4), truth_dsb_blockwise=round(float(np.mean([row['truth_dsb_blockwise'] for row in rows])), 4))
write_json(arguments.out, dict(command='python experiments/blockwise.py ' + ' '.join(sys.argv[1:]), data=Path(arguments.data).name, model=Path(arguments.model).parent.name,
                               block=arguments.block, margin=arguments.margin, machine=f'{os.cpu_count()} CPU cores ({platform.machine()})', date=time.strftime('%Y-%m-%d'),
                               wall_seconds=round(time.perf_counter() - started, 1), summary=summary, images=rows))
print(json.dumps(summary, indent=2))
