#!/usr/bin/env python
"""Evaluate a (quantized) detector with COCO box and mask AP, in mmdet's tools/test.py style.

    python tools/quant_test.py                                  # embedded default: tiny Swin
                                                                # Mask R-CNN on the shapes set
    python tools/quant_test.py CONFIG CHECKPOINT [--work-dir DIR] [--method fp]
    python tools/quant_test.py --cfg-options test_dataloader.dataset.indices=50

Prints a table (box AP, AP50, AP75, APs/m/l; mask AP, AP50, AP75, APs/m/l) and writes
results.json (mmdet metric names, e.g. coco/bbox_mAP) and results.md in the work dir.
"""
import argparse
import datetime
import os
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from fimaq.engine.cli import DictAction, load_config, run_cli  # noqa: E402
from fimaq.engine.errors import UserError  # noqa: E402

DEFAULT_CONFIG = 'mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py'
DEFAULT_CHECKPOINT = 'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth'
METHODS = ('fp',)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Quantize (optionally) and evaluate an MMDetection detector with COCO AP')
    p.add_argument('config', nargs='?', help=f'config file (default: {DEFAULT_CONFIG})')
    p.add_argument('checkpoint', nargs='?', help=f'checkpoint file (default: {DEFAULT_CHECKPOINT})')
    p.add_argument('--work-dir', help='where results.json, results.md and logs go '
                   '(default: work_dirs/<config name>/<method>)')
    p.add_argument('--method', default='fp', choices=METHODS,
                   help='fp evaluates the floating-point model')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, e.g. test_dataloader.dataset.indices=50')
    args = p.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        p.error('give both CONFIG and CHECKPOINT, or neither for the embedded default')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    embedded = args.config is None
    config = osp.join(REPO_ROOT, DEFAULT_CONFIG) if embedded else args.config
    checkpoint = osp.join(REPO_ROOT, DEFAULT_CHECKPOINT) if embedded else args.checkpoint
    if embedded:
        os.chdir(REPO_ROOT)  # the embedded config's data paths are relative to the repository
    cfg = load_config(config, args.cfg_options)
    if not osp.isfile(checkpoint):
        raise UserError(f'checkpoint {checkpoint} does not exist; pass the path of the '
                        'trained .pth for this config')

    from fimaq.engine.data import check_dataset, ensure_generated_dataset
    ensure_generated_dataset(cfg)
    check_dataset(cfg, 'test')

    import torch
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    from fimaq.engine.checkpoint import load_detector_checkpoint
    from fimaq.engine.report import ap_table, atomic_write_text, only_metrics, write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    name = osp.splitext(osp.basename(config))[0]
    cfg.work_dir = args.work_dir or osp.join('work_dirs', name, args.method)
    cfg.load_from = None  # we load (strictly) below
    cfg.resume = False
    # Quiet the per-iteration logs of the test loop; the progress bar still shows.
    cfg.setdefault('default_hooks', {})
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    load_detector_checkpoint(model, checkpoint)

    t0 = time.time()
    metrics = runner.test()
    elapsed = time.time() - t0

    row = dict(label={'model': name, 'method': args.method, 'W/A': 'FP'},
               metrics=only_metrics(metrics))
    table = ap_table([row])
    result = dict(config=config, checkpoint=checkpoint, method=args.method,
                  w_bits=None, a_bits=None, metrics=row['metrics'],
                  eval_seconds=round(elapsed, 2),
                  num_images=len(runner.test_dataloader.dataset),
                  torch=torch.__version__, device=str(next(model.parameters()).device),
                  date=datetime.datetime.now().isoformat(timespec='seconds'))
    out_json = osp.join(cfg.work_dir, 'results.json')
    write_json(out_json, result)
    atomic_write_text(osp.join(cfg.work_dir, 'results.md'), table + '\n')
    print('\n' + table + '\n')
    print(f'[quant_test] {result["num_images"]} images evaluated in {elapsed:.1f} s; '
          f'results in {osp.abspath(out_json)}')
    return 0


if __name__ == '__main__':
    run_cli(main)
