#!/usr/bin/env python
"""Evaluate a (quantized) detector with COCO box and mask AP, in mmdet's tools/test.py style.

    python tools/quant_test.py                                  # embedded default: tiny Swin
                                                                # Mask R-CNN on the shapes set
    python tools/quant_test.py CONFIG CHECKPOINT [--work-dir DIR] [--method calib --w-bits 4 --a-bits 4]
    python tools/quant_test.py --cfg-options test_dataloader.dataset.indices=50

The quantization settings come from the config's ``quant = dict(...)`` section (presets in
mmdet_configs/_base_/quant/), overridden by --method/--w-bits/--a-bits/--quant-options.
Calibration images are drawn (seeded) from the config's *train* split. Prints a table
(box AP, AP50, AP75, APs/m/l; mask AP, ...) and writes results.json (mmdet metric names,
e.g. coco/bbox_mAP), results.md, quant_report.md (per-layer) and quantized.pth (reload it
with --load-quantized) in the work dir.
"""
import argparse
import datetime
import os
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from fimaq.config import METHODS, QuantConfig, QuantConfigError  # noqa: E402
from fimaq.engine.cli import DictAction, load_config, run_cli  # noqa: E402
from fimaq.engine.errors import UserError  # noqa: E402

DEFAULT_CONFIG = 'mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py'
DEFAULT_CHECKPOINT = 'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth'


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Quantize (optionally) and evaluate an MMDetection detector with COCO AP')
    p.add_argument('config', nargs='?', help=f'config file (default: {DEFAULT_CONFIG})')
    p.add_argument('checkpoint', nargs='?', help=f'checkpoint file (default: {DEFAULT_CHECKPOINT})')
    p.add_argument('--work-dir', help='where results.json, results.md and logs go '
                   '(default: work_dirs/<config name>/<method>)')
    p.add_argument('--method', choices=tuple(METHODS),
                   help='fp: the floating-point model; minmax: min/max scales; calib: stage A '
                   'scale search with LayerNorm reparameterization; mse, fisher_brecq, '
                   'fisher_diag, fisher_lr, fimaq: stage A then stage B block reconstruction '
                   'with that loss (default: the config\'s quant.method, else fp)')
    p.add_argument('--w-bits', type=int, help='weight bits (2..8)')
    p.add_argument('--a-bits', type=int, help='activation bits (2..8)')
    p.add_argument('--calib-images', type=int, help='stage A calibration images (train split)')
    p.add_argument('--backbone-only', action='store_true',
                   help='quantize the backbone only (default: the whole detector)')
    p.add_argument('--load-quantized', metavar='PATH',
                   help='evaluate a quantized model saved by an earlier run (its work dir\'s '
                   'quantized.pth) instead of calibrating again')
    p.add_argument('--stage-a', metavar='PATH',
                   help='reuse the stage A result (stage_a.pth) of an earlier run with the same '
                   'stage A settings, e.g. a calib run\'s, and go straight to stage B')
    p.add_argument('--allow-overlap', action='store_true',
                   help='allow calibration images that are also evaluation images')
    p.add_argument('--quant-options', nargs='+', action=DictAction,
                   help='any QuantConfig field, e.g. eq_n=64 search_round=2 seed=1 '
                   'recon_images=64 recon.iters=2000 recon.k=5')
    p.add_argument('--dry-run', action='store_true',
                   help='print the plan (every quantized op and block, cache bytes and estimated '
                   'peak memory per block) without calibrating; needs neither data nor checkpoint')
    p.add_argument('--dry-run-shape', type=int, nargs=2, metavar=('H', 'W'),
                   help='input shape of the dry run (default: what the test pipeline makes of '
                   'a 640x480 COCO image, padded)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                   help='job launcher (tools/dist_quant_test.sh uses pytorch)')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, e.g. test_dataloader.dataset.indices=50')
    args = p.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        p.error('give both CONFIG and CHECKPOINT, or neither for the embedded default')
    return args


def quant_settings(cfg, args) -> QuantConfig:
    """The config's ``quant`` section with the command line on top, validated."""
    q = dict(cfg.get('quant') or {})
    if args.method:
        q['method'] = args.method
    q.setdefault('method', 'fp')
    for key in ('w_bits', 'a_bits', 'calib_images'):
        if getattr(args, key) is not None:
            q[key] = getattr(args, key)
    if args.backbone_only:
        q['backbone_only'] = True
    for key, value in (args.quant_options or {}).items():
        if '.' in key:  # recon.iters=2000 -> quant['recon']['iters'] = 2000
            group, sub = key.split('.', 1)
            q[group] = {**(q.get(group) or {}), sub: value}
        else:
            q[key] = value
    if q['method'] == 'fp':
        q = {'method': 'fp'}
    try:
        return QuantConfig.from_dict(q)
    except QuantConfigError as exc:
        raise UserError(str(exc)) from None


def dry_run(cfg, qcfg: QuantConfig, args, config: str) -> int:
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from fimaq.engine.data import predicted_input_shape
    from fimaq.engine.plan import dry_run_plan
    from fimaq.engine.report import atomic_write_text

    if not qcfg.quantize:
        raise UserError('--dry-run needs a quantization method (--method minmax/calib/fimaq/...)')
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules()
    rcnn = cfg.model.get('test_cfg', {}).get('rcnn')
    if rcnn is not None:   # random weights: keep every detection so the mask head runs
        rcnn['score_thr'] = 0.0
    model = MODELS.build(cfg.model)
    shape = tuple(args.dry_run_shape) if args.dry_run_shape else None
    if shape is None:
        pipeline = cfg.test_dataloader.dataset.get('pipeline', [])
        div = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1) or 1
        shape = predicted_input_shape(480, 640, pipeline, div)
        if shape is None:
            raise UserError('cannot predict the input shape from the test pipeline; '
                            'pass --dry-run-shape H W')
    text, _ = dry_run_plan(model, qcfg, shape)
    name = osp.splitext(osp.basename(config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', name, qcfg.tag)
    out = osp.join(work_dir, 'dry_run.md')
    atomic_write_text(out, text + '\n')
    print(text)
    print(f'\n[quant_test] dry run (nothing calibrated); plan written to {osp.abspath(out)}')
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    embedded = args.config is None
    config = osp.join(REPO_ROOT, DEFAULT_CONFIG) if embedded else args.config
    checkpoint = osp.join(REPO_ROOT, DEFAULT_CHECKPOINT) if embedded else args.checkpoint
    if embedded:
        os.chdir(REPO_ROOT)  # the embedded config's data paths are relative to the repository
    cfg = load_config(config, args.cfg_options)
    qcfg = quant_settings(cfg, args)
    if args.dry_run:
        return dry_run(cfg, qcfg, args, config)
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
    from fimaq.engine.plan import rss_mb
    from fimaq.engine.report import ap_table, atomic_write_text, only_metrics, write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    name = osp.splitext(osp.basename(config))[0]
    cfg.work_dir = args.work_dir or osp.join('work_dirs', name, qcfg.tag)
    cfg.load_from = None  # we load (strictly) below
    cfg.resume = False
    if args.load_quantized and not osp.isfile(args.load_quantized):
        raise UserError(f'quantized checkpoint {args.load_quantized} does not exist; pass the '
                        'quantized.pth written by an earlier run')
    cfg.launcher = args.launcher
    if args.launcher != 'none':
        # Evaluation-only wrapper (no DDP); gloo where there is no GPU.
        cfg.model_wrapper_cfg = dict(type='QuantEvalWrapper')
        if not torch.cuda.is_available() and args.launcher == 'pytorch':
            # mmengine's pytorch launcher calls torch.cuda.set_device; without a GPU we join
            # the process group (gloo) first and the Runner uses it as it is.
            import torch.distributed as torch_dist
            if not torch_dist.is_initialized():
                torch_dist.init_process_group(backend='gloo')
    cfg.test_cfg = dict(type='QuantTestLoop', quant=qcfg.to_dict(),
                        allow_overlap=args.allow_overlap, load_quantized=args.load_quantized,
                        stage_a=args.stage_a)
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    load_detector_checkpoint(model, checkpoint)

    t0 = time.time()
    metrics = runner.test()
    elapsed = time.time() - t0
    from mmengine.dist import get_rank
    if get_rank() != 0:
        return 0   # rank 0 writes the results
    loop = runner.test_loop
    qcfg = loop.qcfg  # a loaded quantized model brings its own settings

    bits = f'W{qcfg.w_bits}A{qcfg.a_bits}' if qcfg.quantize else 'FP'
    row = dict(label={'model': name, 'method': qcfg.method, 'W/A': bits},
               metrics=only_metrics(metrics))
    table = ap_table([row])
    result = dict(config=config, checkpoint=checkpoint, method=qcfg.method,
                  w_bits=qcfg.w_bits if qcfg.quantize else None,
                  a_bits=qcfg.a_bits if qcfg.quantize else None,
                  quant=qcfg.to_dict() if qcfg.quantize else None,
                  metrics=row['metrics'],
                  calib_seconds=round(loop.calib_seconds, 2),
                  stage_a_seconds=round(loop.stage_a_seconds, 2),
                  stage_a_reused=loop.stage_a_reused,
                  eval_seconds=round(loop.eval_seconds, 2),
                  total_seconds=round(elapsed, 2),
                  num_images=len(runner.test_dataloader.dataset),
                  peak_rss_mb=round(rss_mb(), 1),
                  peak_cuda_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1)
                  if torch.cuda.is_available() else None,
                  torch=torch.__version__, device=str(next(model.parameters()).device),
                  date=datetime.datetime.now().isoformat(timespec='seconds'))
    out_json = osp.join(cfg.work_dir, 'results.json')
    write_json(out_json, result)
    atomic_write_text(osp.join(cfg.work_dir, 'results.md'), table + '\n')
    print('\n' + table + '\n')
    print(f'[quant_test] calibration {loop.calib_seconds:.1f} s, evaluation of '
          f'{result["num_images"]} images {loop.eval_seconds:.1f} s; results in {osp.abspath(out_json)}')
    return 0


if __name__ == '__main__':
    run_cli(main)
