"""The project's evaluator and table code reproduce cocoapi's published evaluation printout."""
import json
import os.path as osp
import re
from collections import defaultdict

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from fimaq.engine.metric import CocoDetMetric
from fimaq.engine.report import coco_summary_lines

REF = osp.join(osp.dirname(__file__), 'data', 'coco_eval_reference')


def expected_lines(iou_type: str) -> list[str]:
    text = open(osp.join(REF, 'expected_eval.txt')).read()
    block = text.split(f'type={iou_type}\n', 1)[1].split('-----', 1)[0]
    return [ln for ln in block.splitlines() if ln.startswith(' Average')]


def evaluate(iou_type: str, only=None) -> dict:
    ann_file = osp.join(REF, 'instances_val2014_100.json')
    gt = json.load(open(ann_file))
    classes = tuple(c['name'] for c in gt['categories'])
    label_of = {c['id']: i for i, c in enumerate(gt['categories'])}
    images = {im['id']: im for im in gt['images']}
    dets = json.load(open(osp.join(REF, f'instances_val2014_fake{iou_type}100_results.json')))
    per_image = defaultdict(list)
    for d in dets:
        per_image[d['image_id']].append(d)

    metric = CocoDetMetric(ann_file=ann_file, metric=[iou_type])
    metric.dataset_meta = dict(classes=classes)
    samples = []
    # Every image of the evaluation is a sample, as in a test loop; some have no detections.
    for img_id in (only or images):
        ds = per_image.get(img_id, [])
        if iou_type == 'bbox':
            xywh = np.array([d['bbox'] for d in ds], dtype=np.float64).reshape(-1, 4)
        else:
            xywh = np.array([mask_utils.toBbox(d['segmentation']) for d in ds],
                            dtype=np.float64).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        pred = dict(bboxes=torch.from_numpy(xyxy),
                    scores=torch.tensor([d['score'] for d in ds], dtype=torch.float64),
                    labels=torch.tensor([label_of[d['category_id']] for d in ds], dtype=torch.long))
        if iou_type == 'segm':
            pred['masks'] = [dict(d['segmentation']) for d in ds]
        im = images[img_id]
        samples.append(dict(img_id=img_id, ori_shape=(im['height'], im['width']),
                            pred_instances=pred))
    metric.process({}, samples)
    return metric.evaluate(len(samples))


@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_reproduces_cocoapi_printout(iou_type):
    metrics = evaluate(iou_type)
    ours = coco_summary_lines(metrics, iou_type)
    want = expected_lines(iou_type)
    assert len(want) == 12
    assert ours == want


def test_headline_numbers():
    box, mask = evaluate('bbox'), evaluate('segm')
    assert box['coco/bbox_mAP'] == pytest.approx(0.505, abs=5e-4)
    assert box['coco/bbox_mAP_50'] == pytest.approx(0.697, abs=5e-4)
    assert mask['coco/segm_mAP'] == pytest.approx(0.320, abs=5e-4)
    assert mask['coco/segm_AR@100'] == pytest.approx(0.417, abs=5e-4)
    # Honest AR names follow the maxDets used: no AR@1000 from an evaluation at 100.
    assert not any(re.search(r'AR.*@(300|1000)$', k) for k in box)


def test_a_subset_is_scored_on_its_own_images():
    """Evaluating some images scores those images (cocoapi with imgIds = the subset), not
    the whole annotation file with misses charged for the images left out."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    ann_file = osp.join(REF, 'instances_val2014_100.json')
    gt = COCO(ann_file)
    subset = sorted(gt.getImgIds())[:40]
    ours = evaluate('bbox', only=subset)['coco/bbox_mAP']
    dets = gt.loadRes(osp.join(REF, 'instances_val2014_fakebbox100_results.json'))
    ev = COCOeval(gt, dets, 'bbox')
    ev.params.imgIds = subset
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ours == pytest.approx(ev.stats[0], abs=5e-4)
    assert abs(ours - evaluate('bbox')['coco/bbox_mAP']) > 0.01   # and it is not the full set's
