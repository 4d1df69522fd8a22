#!/usr/bin/env python
"""Generate the embedded *shapes* benchmark: a seeded COCO-format instance-segmentation set.

Coloured, rotated, partly occluded shapes of several classes are drawn on textured
backgrounds cut from the photographs that scikit-image ships (``skimage.data``), in images of
varying sizes and aspect ratios (so keep-ratio resizing and padding are exercised). Masks are
the *visible* pixels of each shape (later shapes occlude earlier ones), stored as compressed
RLE; boxes and areas are derived from those masks exactly as COCO does.

    python tools/make_shapes_coco.py --out data/shapes            # default sizes
    python tools/make_shapes_coco.py --out /tmp/s --num-train 20 --num-val 5 --seed 1

The same seed always gives byte-identical images and json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

import cv2
import numpy as np
from pycocotools import mask as mask_utils

CLASSES = ('circle', 'square', 'triangle', 'star', 'hexagon', 'cross', 'ring')

# Photographs and textures bundled inside the scikit-image wheel (no download needed).
BACKGROUND_NAMES = ('astronaut', 'brick', 'camera', 'cat', 'coffee', 'coins', 'grass',
                    'gravel', 'moon', 'page', 'rocket', 'text', 'logo', 'horse', 'clock')


def load_backgrounds() -> list[np.ndarray]:
    """Return the bundled skimage images as uint8 BGR arrays (grey ones replicated)."""
    from skimage import data as skdata
    images = []
    for name in BACKGROUND_NAMES:
        try:
            img = getattr(skdata, name)()
        except Exception:  # an image that this skimage build does not ship locally
            continue
        img = np.asarray(img)
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-6))).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3][..., ::-1]  # RGB(A) -> BGR
        images.append(np.ascontiguousarray(img))
    if len(images) < 4:
        raise RuntimeError('scikit-image ships fewer than 4 background images here; '
                           'reinstall scikit-image (pip install scikit-image==0.26.0)')
    return images


def shape_polygons(cls: str, cx: float, cy: float, r: float, angle: float,
                   aspect: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outer polygons to fill and inner polygons to cut out, in pixel coordinates."""

    def ngon(n: int, radius: float, phase: float = 0.0, radii=None) -> np.ndarray:
        t = np.arange(n) * 2 * math.pi / n + phase
        rad = radius if radii is None else np.asarray(radii) * radius
        return np.stack([rad * np.cos(t), rad * np.sin(t)], axis=1)

    if cls == 'circle':
        outer, inner = [ngon(48, r)], []
    elif cls == 'square':
        outer, inner = [ngon(4, r, math.pi / 4) * np.array([aspect, 1.0])], []
    elif cls == 'triangle':
        outer, inner = [ngon(3, r, -math.pi / 2)], []
    elif cls == 'star':
        outer, inner = [ngon(10, r, -math.pi / 2, radii=[1.0, 0.45] * 5)], []
    elif cls == 'hexagon':
        outer, inner = [ngon(6, r)], []
    elif cls == 'cross':
        a, b = r, r * 0.33
        outer = [np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a],
                           [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]], dtype=np.float64)]
        inner = []
    elif cls == 'ring':
        outer, inner = [ngon(48, r)], [ngon(48, r * 0.55)]
    else:
        raise ValueError(f'unknown shape class {cls!r}')
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    move = lambda p: p @ rot.T + np.array([cx, cy])  # noqa: E731
    return [move(p) for p in outer], [move(p) for p in inner]


def rasterize(h: int, w: int, outer: list[np.ndarray], inner: list[np.ndarray]) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(p * 16).astype(np.int32) for p in outer], 1, cv2.LINE_8, shift=4)
    if inner:
        cv2.fillPoly(m, [np.round(p * 16).astype(np.int32) for p in inner], 0, cv2.LINE_8, shift=4)
    return m.astype(bool)


def make_background(rng: np.random.Generator, bgs: list[np.ndarray], h: int, w: int) -> np.ndarray:
    src = bgs[rng.integers(len(bgs))]
    scale = rng.uniform(0.4, 1.2)
    sh, sw = src.shape[:2]
    ch, cw = min(sh, max(8, int(h / scale))), min(sw, max(8, int(w / scale)))
    y0, x0 = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    img = cv2.resize(src[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    # Colour jitter keeps the texture but varies hue/contrast between images.
    gain = rng.uniform(0.6, 1.2, size=3)
    bias = rng.uniform(-30, 30, size=3)
    return np.clip(img.astype(np.float32) * gain + bias, 0, 255)


def paint_shape(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Fill the mask with a random colour, optionally a linear gradient, plus noise."""
    ys, xs = np.nonzero(mask)
    color = rng.uniform(0, 255, size=3)
    vals = np.broadcast_to(color, (len(ys), 3)).astype(np.float32)
    if rng.random() < 0.5:
        color2 = rng.uniform(0, 255, size=3)
        d = rng.normal(size=2)
        t = xs * d[0] + ys * d[1]
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        vals = (1 - t)[:, None] * color + t[:, None] * color2
    vals = vals + rng.normal(0, 6, size=vals.shape)
    img[ys, xs] = vals


def make_image(rng: np.random.Generator, bgs: list[np.ndarray], args) -> tuple[np.ndarray, list]:
    w = int(rng.integers(args.min_size, args.max_size + 1))
    h = int(rng.integers(args.min_size, args.max_size + 1))
    img = make_background(rng, bgs, h, w)
    masks, labels = [], []
    n = int(rng.integers(args.min_shapes, args.max_shapes + 1))
    for _ in range(n):
        for _attempt in range(20):
            cls_id = int(rng.integers(len(CLASSES)))
            r = rng.uniform(args.min_radius, args.max_radius) * min(h, w) / 256.0
            r = max(r, 6.0)
            cx, cy = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.95 * h)
            outer, inner = shape_polygons(CLASSES[cls_id], cx, cy, r, rng.uniform(0, 2 * math.pi),
                                          rng.uniform(0.6, 1.0))
            m = rasterize(h, w, outer, inner)
            if m.sum() < 40:
                continue
            # Occlusion is allowed, but no earlier shape may lose more than half of what is left.
            if all((vis & ~m).sum() >= 0.5 * vis.sum() for vis in masks):
                break
        else:
            continue
        masks = [vis & ~m for vis in masks]
        masks.append(m)
        labels.append(cls_id)
        paint_shape(img, m, rng)
    img = np.clip(img + rng.normal(0, 3, size=img.shape), 0, 255).astype(np.uint8)
    return img, list(zip(masks, labels))


def annotations_for(objs, image_id: int, next_id: int) -> list[dict]:
    anns = []
    for mask, label in objs:
        if mask.sum() < 20:
            continue
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
        rle['counts'] = rle['counts'].decode('ascii')
        anns.append(dict(id=next_id + len(anns), image_id=image_id, category_id=label + 1,
                         segmentation=rle, area=float(mask_utils.area(rle)),
                         bbox=[x, y, bw, bh], iscrowd=0))
    return anns


def atomic_write_json(obj, path: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def make_split(split: str, num: int, seed: int, bgs, args, first_image_id: int) -> None:
    img_dir = os.path.join(args.out, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(os.path.join(args.out, 'annotations'), exist_ok=True)
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(num):
        image_id = first_image_id + i
        img, objs = make_image(rng, bgs, args)
        name = f'{image_id:06d}.png'
        cv2.imwrite(os.path.join(img_dir, name), img)
        images.append(dict(id=image_id, file_name=name, height=img.shape[0], width=img.shape[1]))
        anns += annotations_for(objs, image_id, len(anns) + 1)
    coco = dict(info=dict(description=f'fimaq shapes benchmark ({split}, seed {args.seed})'),
                licenses=[], images=images, annotations=anns,
                categories=[dict(id=i + 1, name=c, supercategory='shape')
                            for i, c in enumerate(CLASSES)])
    atomic_write_json(coco, os.path.join(args.out, 'annotations', f'instances_{split}.json'))
    print(f'[make_shapes_coco] {split}: {num} images, {len(anns)} instances -> {img_dir}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='data/shapes', help='output root (train/, val/, annotations/)')
    p.add_argument('--num-train', type=int, default=800)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--min-size', type=int, default=160, help='smallest image side (px)')
    p.add_argument('--max-size', type=int, default=320, help='largest image side (px)')
    p.add_argument('--min-shapes', type=int, default=2)
    p.add_argument('--max-shapes', type=int, default=7)
    p.add_argument('--min-radius', type=float, default=14.0, help='shape radius at a 256-px side')
    p.add_argument('--max-radius', type=float, default=56.0)
    args = p.parse_args(argv)
    if args.min_size > args.max_size or args.min_size < 32:
        p.error('--min-size must be >= 32 and <= --max-size')
    if args.num_train < 0 or args.num_val < 0:
        p.error('--num-train/--num-val must be >= 0')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bgs = load_backgrounds()
    # Separate seeded streams per split: changing --num-train never changes the val images.
    make_split('train', args.num_train, args.seed * 1000 + 1, bgs, args, first_image_id=1)
    make_split('val', args.num_val, args.seed * 1000 + 2, bgs, args, first_image_id=1_000_001)
    print(f'[make_shapes_coco] done: {os.path.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
