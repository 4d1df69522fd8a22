#!/usr/bin/env python
"""Check the --dry-run memory estimate against the measured peak RSS of a real run.

Two fresh processes on the same detector, method, input shape and image count: one prints
the dry-run plan's estimated peak; the other runs stage A (min/max, cheap) and stage B
(``--iters`` iterations per block, full caches, Fisher passes) on seeded noise images of
that shape and reports its peak resident memory (``ru_maxrss``). Prints one table row.

    python benchmarks/dry_run_check.py --shape 512 640 --images 32
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def child(mode: str, args) -> dict:
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from fimaq import QuantConfig, quantize
    from fimaq.engine.cli import load_config
    from fimaq.engine.plan import blank_batch, dry_run_plan, rss_mb

    torch.set_num_threads(args.threads)
    register_all_modules()
    cfg = load_config(osp.join(REPO_ROOT, args.config))
    model = MODELS.build(cfg.model).eval()
    qcfg = QuantConfig.from_dict(dict(method=args.method, w_bits=4, a_bits=4, calib_images=1,
                                      calib_batch_size=1, recon_images=args.images, search=False,
                                      reparam=False, recon=dict(iters=args.iters, k=1,
                                                                cache_mb=args.cache_mb)))
    shape = tuple(args.shape)
    if mode == 'plan':
        _, numbers = dry_run_plan(model, qcfg, shape)
        peak = max(v['peak_mb'] for v in numbers['blocks'].values())
        return dict(estimate_mb=peak, base_mb=numbers['base_mb'])
    batches = []
    for i in range(args.images):
        x, samples = blank_batch(model, 1, shape)
        batches.append((x + 0.01 * i, samples))
    quantize(model, batches[:1], qcfg, log=lambda s: None, recon_batches=batches)
    return dict(measured_mb=rss_mb())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py')
    p.add_argument('--method', default='fimaq')
    p.add_argument('--shape', type=int, nargs=2, default=[512, 640])
    p.add_argument('--images', type=int, default=32)
    p.add_argument('--iters', type=int, default=4)
    p.add_argument('--cache-mb', type=int, default=8192)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--child', choices=['plan', 'run'])
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0
    res = {}
    for mode in ('plan', 'run'):
        out = subprocess.run([sys.executable, __file__, '--child', mode] + sys.argv[1:],
                             capture_output=True, text=True, check=True).stdout
        res.update(json.loads(out.strip().splitlines()[-1]))
    print('| detector | method | input | images | cache_mb | estimated peak MiB | measured peak MiB | error |')
    print('|---|---|---|---|---|---|---|---|')
    err = (res['estimate_mb'] - res['measured_mb']) / res['measured_mb']
    print(f'| {osp.basename(args.config)} | {args.method} | {args.shape[0]}x{args.shape[1]} | '
          f'{args.images} | {args.cache_mb} | {res["estimate_mb"]:.0f} | {res["measured_mb"]:.0f} | '
          f'{100 * err:+.0f}% |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
