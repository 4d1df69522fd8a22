"""Dataset checks and generation of the embedded benchmark when a config asks for it."""
from __future__ import annotations

import os.path as osp
import subprocess
import sys

from mmengine.config import Config

from .errors import UserError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _dataset_cfgs(cfg: Config, which: str):
    loader = cfg.get(f'{which}_dataloader')
    if not loader:
        return []
    ds = _unwrap_dataset_cfg(loader['dataset'])
    return list(ds['datasets']) if 'datasets' in ds else [ds]


def ensure_generated_dataset(cfg: Config) -> None:
    """Generate the dataset a config declares in ``generated_dataset`` if it is absent.

    ``generated_dataset = dict(script='tools/make_shapes_coco.py', out='data/shapes/',
    args=[...])`` lets the embedded benchmark run from a clean clone; configs of real
    datasets do not declare it and are only checked (:func:`check_dataset`).
    """
    gen = cfg.get('generated_dataset')
    if not gen:
        return
    marker = osp.join(gen['out'], gen.get('marker', 'annotations/instances_val.json'))
    if osp.isfile(marker):
        return
    script = gen['script'] if osp.isabs(gen['script']) else osp.join(REPO_ROOT, gen['script'])
    cmd = [sys.executable, script, '--out', gen['out'], *map(str, gen.get('args', []))]
    print(f'[fimaq] dataset {gen["out"]} is absent; generating it: {" ".join(cmd)}', flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise UserError(f'generating the dataset with {script} failed; run it by hand to see why')


def check_dataset(cfg: Config, which: str = 'test') -> None:
    """One-line errors for a missing data root, annotation file or image folder."""
    for ds in _dataset_cfgs(cfg, which):
        root = ds.get('data_root') or ''
        ann = ds.get('ann_file') or ''
        ann_path = ann if osp.isabs(ann) or not root else osp.join(root, ann)
        if root and not osp.isdir(root):
            raise UserError(f'dataset root {root} does not exist ({which}_dataloader.dataset.'
                            f'data_root); put the dataset there or pass --cfg-options '
                            f'{which}_dataloader.dataset.data_root=/path/to/data/')
        if ann and not osp.isfile(ann_path):
            raise UserError(f'annotation file {ann_path} does not exist ({which}_dataloader.'
                            f'dataset.ann_file); check the dataset layout or pass --cfg-options '
                            f'{which}_dataloader.dataset.ann_file=...')
        img = (ds.get('data_prefix') or {}).get('img')
        if img is not None:
            img_path = img if osp.isabs(img) or not root else osp.join(root, img)
            if not osp.isdir(img_path):
                raise UserError(f'image folder {img_path} does not exist ({which}_dataloader.'
                                'dataset.data_prefix.img); check the dataset layout')
    evaluator = cfg.get(f'{which}_evaluator')
    for ev in (evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]):
        ann = (ev or {}).get('ann_file')
        if ann and not osp.isfile(ann):
            raise UserError(f'annotation file {ann} does not exist ({which}_evaluator.ann_file); '
                            f'pass --cfg-options {which}_evaluator.ann_file=/path/to/'
                            'instances_val.json')


def _unwrap_dataset_cfg(ds: dict) -> dict:
    """The dataset inside RepeatDataset-style wrappers (children under 'dataset')."""
    while 'dataset' in ds and 'ann_file' not in ds:
        ds = ds['dataset']
    return ds


def predicted_input_shape(height: int, width: int, pipeline: list, divisor: int):
    """The padded input shape the test pipeline gives an image, from its size alone.

    None when the pipeline has no plain ``Resize`` (then shapes cannot be predicted).
    """
    from mmcv.image import rescale_size
    resize = [t for t in pipeline if t.get('type') in ('Resize', 'mmdet.Resize')]
    if len(resize) != 1 or resize[0].get('scale') is None:
        return None
    t = resize[0]
    scale = t['scale'] if isinstance(t['scale'], (tuple, list)) else (t['scale'], t['scale'])
    if t.get('keep_ratio', False):
        w, h = rescale_size((width, height), tuple(scale))
    else:
        w, h = scale
    return -(-h // divisor) * divisor, -(-w // divisor) * divisor


def draw_calibration_ids(shapes: list, num_images: int, seed: int, mode: str, log=print) -> list[int]:
    """Seeded indices of ``num_images`` images; ``shapes[i]`` is image i's padded test shape.

    ``mode='common'``: among the images of the most common shape (ALGORITHM §3.3: most
    COCO images become one shape, so padding wastes nothing); if that shape has too few
    images, the next most common shapes join until there are enough. ``'largest'``: any
    images (they are then padded to the largest of the draw).
    """
    import numpy as np
    rng = np.random.default_rng(seed)
    pool = list(range(len(shapes)))
    if mode == 'common' and None not in shapes:
        counts: dict = {}
        for i, sh in enumerate(shapes):
            counts.setdefault(sh, []).append(i)
        groups = sorted(counts.values(), key=lambda g: (-len(g), g[0]))
        pool = []
        for g in groups:
            pool += g
            if len(pool) >= num_images:
                break
        if len(groups[0]) < num_images:
            log(f'calibration: only {len(groups[0])} image(s) have the most common input shape; '
                f'drawing from the {len(pool)} images of the {groups.index(g) + 1} most common shapes')
    elif mode == 'common':
        log('calibration: the test pipeline has no plain Resize, so shapes are not predicted; '
            'drawing from all images (padded to the largest)')
    return sorted(rng.choice(pool, size=num_images, replace=False).tolist())


def preprocess_batches(model, items: list, batch_size: int) -> list:
    """Dataset items -> ``[(inputs, data_samples), ...]`` through the model's data preprocessor."""
    from mmengine.dataset import pseudo_collate
    batches = []
    for i in range(0, len(items), batch_size):
        data = model.data_preprocessor(pseudo_collate(items[i:i + batch_size]), False)
        batches.append((data['inputs'], data['data_samples']))
    return batches


def calibration_batches(cfg: Config, model, num_images: int, batch_size: int, seed: int,
                        allow_overlap: bool = False, shape_mode: str = 'common',
                        log=print) -> list:
    """Seeded calibration images from the *train* split, test pipeline, one padded shape.

    Returns ``[(inputs, data_samples), ...]`` ready for the detector's forward. Images are
    drawn among those of the most common test-pipeline shape (``shape_mode='common'``, see
    ``draw_calibration_ids``) or among all (``'largest'``); all batches are padded to the
    largest image of the draw (rounded up to the preprocessor's size divisor), so every op
    sees one input shape, as the Fisher averaging of stage B needs.
    Refuses calibration images whose ids are in the evaluation set unless ``allow_overlap``.
    """
    import copy

    import torch.nn.functional as F
    from mmdet.registry import DATASETS

    ds_cfg = copy.deepcopy(_unwrap_dataset_cfg(cfg.train_dataloader['dataset']))
    ds_cfg['pipeline'] = copy.deepcopy(_unwrap_dataset_cfg(cfg.test_dataloader['dataset'])['pipeline'])
    ds_cfg['test_mode'] = True
    ds_cfg.pop('indices', None)
    dataset = DATASETS.build(ds_cfg)
    if len(dataset) < num_images:
        raise UserError(f'calibration asks for {num_images} images but the train split '
                        f'({ds_cfg.get("ann_file")}) has {len(dataset)}; lower calib_images')
    div = getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1
    shapes = []
    if shape_mode == 'common':
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            shapes.append(predicted_input_shape(info['height'], info['width'], ds_cfg['pipeline'], div)
                          if 'height' in info and 'width' in info else None)
    else:
        shapes = [None] * len(dataset)
    idx = draw_calibration_ids(shapes, num_images, seed, shape_mode, log)
    items = [dataset[i] for i in idx]
    if not allow_overlap:
        calib_ids = {it['data_samples'].img_id for it in items}
        test_cfg = copy.deepcopy(_unwrap_dataset_cfg(cfg.test_dataloader['dataset']))
        test_cfg.update(pipeline=[], test_mode=True)
        test_set = DATASETS.build(test_cfg)
        overlap = calib_ids & {test_set.get_data_info(i)['img_id'] for i in range(len(test_set))}
        if overlap:
            raise UserError(f'{len(overlap)} calibration image(s) are also evaluation images '
                            f'(e.g. id {min(overlap)}); calibrate on the train split or pass '
                            '--allow-overlap')
    batches = preprocess_batches(model, items, batch_size)
    H = max(b[0].shape[-2] for b in batches)
    W = max(b[0].shape[-1] for b in batches)
    H, W = -(-H // div) * div, -(-W // div) * div
    padded = []
    for inputs, samples in batches:
        pad_value = float(getattr(model.data_preprocessor, 'pad_value', 0))
        inputs = F.pad(inputs, (0, W - inputs.shape[-1], 0, H - inputs.shape[-2]), value=pad_value)
        for s in samples:
            s.set_metainfo(dict(batch_input_shape=(H, W), pad_shape=(H, W)))
        padded.append((inputs, samples))
    return padded
