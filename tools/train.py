#!/usr/bin/env python
"""Train a detector with mmengine's Runner (a thin wrapper, like mmdet's tools/train.py).

    python tools/train.py mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py
    python tools/train.py CONFIG --resume            # continue from the last checkpoint
    python tools/train.py CONFIG --cfg-options train_cfg.max_iters=500

Checkpoints land in the work dir every `default_hooks.checkpoint.interval` iterations, so a
killed run continues with --resume. The dataset is generated first when the config declares
`generated_dataset` and it is absent.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from fimaq.engine.cli import DictAction, load_config, run_cli  # noqa: E402
from fimaq.engine.data import check_dataset, ensure_generated_dataset  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description='Train a detector (mmengine Runner)')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='where logs and checkpoints go '
                   '(default: work_dirs/<config name>)')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from the given checkpoint, or from the latest in the work dir')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, e.g. train_cfg.max_iters=500')
    return p.parse_args()


def main() -> int:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    cfg.work_dir = args.work_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if cfg.get('load_from') and not osp.isfile(cfg.load_from):
        from fimaq.engine.errors import UserError
        raise UserError(f'load_from checkpoint {cfg.load_from} does not exist; train the model '
                        'it names first or pass --cfg-options load_from=None')
    ensure_generated_dataset(cfg)
    check_dataset(cfg, 'train')
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    print(f'[train] checkpoints and logs in {os.path.abspath(cfg.work_dir)}')
    return 0


if __name__ == '__main__':
    run_cli(main)
