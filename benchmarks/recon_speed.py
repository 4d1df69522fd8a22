#!/usr/bin/env python
"""Stage B speed: one reconstruction iteration with each loss, and the Fisher update vs k.

Prints and saves two tables (Markdown + JSON):
1. per block: seconds per iteration with ``mse`` and ``fisher_dplr`` (FIMA-Q) and their ratio
   (the goal is <= 1.3x), the block's output size and the time of one Fisher update;
2. per k: seconds per ``fisher_dplr`` iteration and the Fisher update time (k updates).

Each measurement reconstructs one block of a fresh copy of the minmax-quantized detector
for ``--iters`` iterations on ``--images`` seeded calibration images (batch 1), through the
same ``fimaq.recon.reconstruct`` the methods use; Fisher updates are timed separately
from the loop, so "s/iter" is the loop alone.

    python benchmarks/recon_speed.py                  # tiny Swin Mask R-CNN, defaults below
    python benchmarks/recon_speed.py CONFIG CKPT --images 8 --iters 40 --ks 1 2 5 10
"""
import argparse
import copy
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

DEFAULT = ('mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py',
           'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', nargs='?', default=DEFAULT[0])
    p.add_argument('checkpoint', nargs='?', default=DEFAULT[1])
    p.add_argument('--images', type=int, default=8, help='calibration images (batch 1)')
    p.add_argument('--iters', type=int, default=40, help='iterations per measurement')
    p.add_argument('--blocks', nargs='+', help='block names (default: the first block of every '
                   'stage, each patch merging and the neck)')
    p.add_argument('--ks', nargs='+', type=int, default=[1, 2, 5, 10], help='Fisher ranks to time')
    p.add_argument('--k-block', help='block for the k table (default: the first Swin block)')
    p.add_argument('--bits', type=int, default=4)
    p.add_argument('--threads', type=int)
    p.add_argument('--out', default='benchmarks/recon_speed.md')
    return p.parse_args()


def main() -> int:
    args = parse_args()
    os.chdir(REPO_ROOT)
    import torch

    from fimaq import QuantConfig, quantize
    from fimaq.engine.checkpoint import build_detector
    from fimaq.engine.cli import load_config
    from fimaq.engine.data import calibration_batches, ensure_generated_dataset
    from fimaq.engine.report import atomic_write_text, write_json
    from fimaq.models.detector import detector_features
    from fimaq.models.outputs import DetectorKL
    from fimaq.recon.reconstruct import ReconOptions, reconstruct

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    ensure_generated_dataset(cfg)
    model = build_detector(cfg, args.checkpoint).to('cuda' if torch.cuda.is_available() else 'cpu')
    batches = calibration_batches(cfg, model, args.images, 1, 0)
    qm = quantize(model, batches, QuantConfig.from_dict(
        dict(method='minmax', w_bits=args.bits, a_bits=args.bits)), log=lambda s: None)
    names = [n for n, _ in qm.blocks]
    chosen = args.blocks or [n for n in names if n.endswith('blocks.0') or 'downsample' in n
                             or n in ('neck', 'backbone.patch_embed')]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise SystemExit(f'error: unknown block(s) {unknown}; blocks: {", ".join(names)}')

    def measure(block_name: str, loss: str, k: int = 5) -> dict:
        m = copy.deepcopy(model)
        block = m.get_submodule(block_name)
        kl = DetectorKL(m, batches, 20.0, None, 'kl') if loss.startswith('fisher') else None
        opts = ReconOptions(loss=loss, iters=args.iters, k=k)
        out = {}
        stats = reconstruct([(block_name, block)], m, batches, detector_features(m), kl, opts,
                            log=lambda s: None)[block_name]
        with torch.no_grad():
            feats = None

            def grab(mod, a, o):
                nonlocal feats
                feats = o
            h = block.register_forward_hook(grab)
            detector_features(m)(batches[0])
            h.remove()
        from fimaq.recon.cache import flat, tensors_of
        out.update(stats, features=flat(tensors_of(feats)).shape[1])
        return out

    rows, krows = [], []
    for name in chosen:
        a, b = measure(name, 'mse'), measure(name, 'fisher_dplr')
        rows.append(dict(block=name, features=a['features'], mse=a['seconds_per_iter'],
                         dplr=b['seconds_per_iter'], ratio=b['seconds_per_iter'] / a['seconds_per_iter'],
                         fisher_update=b['fisher_seconds'] / max(1, b['fisher_updates'])))
        print(f'[recon_speed] {name}: mse {a["seconds_per_iter"]:.4f} s/it, fisher_dplr '
              f'{b["seconds_per_iter"]:.4f} s/it ({rows[-1]["ratio"]:.2f}x), Fisher update '
              f'{rows[-1]["fisher_update"]:.2f} s', flush=True)
    k_block = args.k_block or next(n for n in names if n.endswith('blocks.0'))
    for k in args.ks:
        b = measure(k_block, 'fisher_dplr', k=k)
        krows.append(dict(k=k, dplr=b['seconds_per_iter'], updates=b['fisher_updates'],
                          fisher_total=b['fisher_seconds']))
        print(f'[recon_speed] k={k}: {b["seconds_per_iter"]:.4f} s/it, {b["fisher_updates"]} '
              f'Fisher updates in {b["fisher_seconds"]:.2f} s', flush=True)

    lines = [f'Stage B speed: {osp.basename(args.config)}, W{args.bits}A{args.bits}, '
             f'{args.images} images at batch 1, {args.iters} iterations per measurement, '
             f'{torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} thread(s)"}, torch {torch.__version__}.', '',
             '| block | output features | mse s/it | fisher_dplr s/it | ratio | one Fisher update s |',
             '|---|---|---|---|---|---|']
    lines += [f'| {r["block"]} | {r["features"]} | {r["mse"]:.4f} | {r["dplr"]:.4f} | '
              f'{r["ratio"]:.2f} | {r["fisher_update"]:.2f} |' for r in rows]
    lines += ['', f'Fisher rank k on {k_block}:', '',
              '| k | fisher_dplr s/it | Fisher updates | their total s | s per update |',
              '|---|---|---|---|---|']
    lines += [f'| {r["k"]} | {r["dplr"]:.4f} | {r["updates"]} | {r["fisher_total"]:.2f} | '
              f'{r["fisher_total"] / max(1, r["updates"]):.2f} |' for r in krows]
    table = '\n'.join(lines)
    print('\n' + table)
    atomic_write_text(args.out, table + '\n')
    write_json(osp.splitext(args.out)[0] + '.json', dict(blocks=rows, ks=krows))
    print(f'[recon_speed] written to {osp.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
