"""The generated benchmark is deterministic, COCO-valid and varied."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from pycocotools.coco import COCO

import make_shapes_coco


def _digest(root: str) -> str:
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(osp.join(dirpath, f), 'rb').read())
    return h.hexdigest()


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('shapes'))
    make_shapes_coco.main(['--out', out, '--num-train', '24', '--num-val', '8', '--seed', '3'])
    return out


def test_same_seed_same_bytes(small_set, tmp_path):
    again = str(tmp_path / 'again')
    make_shapes_coco.main(['--out', again, '--num-train', '24', '--num-val', '8', '--seed', '3'])
    assert _digest(small_set) == _digest(again)
    other = str(tmp_path / 'other')
    make_shapes_coco.main(['--out', other, '--num-train', '24', '--num-val', '8', '--seed', '4'])
    assert _digest(small_set) != _digest(other)


def test_coco_valid_areas_and_boxes(small_set):
    for split in ('train', 'val'):
        coco = COCO(osp.join(small_set, 'annotations', f'instances_{split}.json'))
        assert len(coco.getCatIds()) >= 6
        anns = coco.loadAnns(coco.getAnnIds())
        assert len(anns) >= 2 * len(coco.getImgIds())
        for ann in anns:
            m = coco.annToMask(ann)
            assert ann['iscrowd'] == 0
            assert ann['area'] == m.sum() > 0
            ys, xs = np.nonzero(m)
            x, y, w, h = ann['bbox']
            assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                    ys.max() - ys.min() + 1)


def test_varied_sizes_classes_and_occlusion(small_set):
    data = json.load(open(osp.join(small_set, 'annotations', 'instances_train.json')))
    shapes = {(im['height'], im['width']) for im in data['images']}
    ratios = {round(im['width'] / im['height'], 1) for im in data['images']}
    assert len(shapes) > 10 and len(ratios) > 5
    assert len({a['category_id'] for a in data['annotations']}) == len(make_shapes_coco.CLASSES)
    # Occlusion: some visible masks are smaller than their unoccluded shape, i.e. a box
    # shared with another instance overlaps.
    coco = COCO(osp.join(small_set, 'annotations', 'instances_train.json'))
    overlaps = 0
    for img_id in coco.getImgIds():
        masks = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id))]
        for i in range(len(masks)):
            for j in range(i):
                assert not (masks[i] & masks[j]).any()  # visible masks never share a pixel
        boxes = [a['bbox'] for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id))]
        for i in range(len(boxes)):
            for j in range(i):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[i], boxes[j]
                overlaps += (min(x1 + w1, x2 + w2) > max(x1, x2)) and (min(y1 + h1, y2 + h2) > max(y1, y2))
    assert overlaps > 0
