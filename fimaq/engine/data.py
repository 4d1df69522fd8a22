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
    ds = loader['dataset']
    # ConcatDataset / RepeatDataset wrappers keep their children under 'datasets' / 'dataset'.
    while 'dataset' in ds and 'ann_file' not in ds:
        ds = ds['dataset']
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
