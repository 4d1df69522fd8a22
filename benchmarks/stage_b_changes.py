#!/usr/bin/env python
"""How much stage B moved a model away from its stage A start: weight roundings changed and
activation scales moved, over the reconstructed blocks (backbone and neck).

    python benchmarks/stage_b_changes.py CONFIG CHECKPOINT CALIB_RUN RUN [RUN ...]

CALIB_RUN is the work dir of the ``calib`` run whose stage A the RUNs (stage B work dirs)
started from. Stage A rounds to nearest and stage B only learns roundings (AdaRound) and
activation scales, so the share of weights whose integer differs from the nearest one and
the relative change of the input scales say how far stage B went.
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('calib_run')
    p.add_argument('runs', nargs='+')
    p.add_argument('--prefixes', nargs='+', default=['backbone.', 'neck.'],
                   help='ops counted (default: the reconstructed blocks)')
    args = p.parse_args()

    import torch

    from fimaq.engine.checkpoint import build_detector, load_quantized
    from fimaq.engine.cli import load_config
    from fimaq.quant.layers import QuantConv2d, QuantLinear

    cfg = load_config(args.config)

    def weighted_ops(run):
        model = build_detector(cfg, args.checkpoint)
        load_quantized(model, osp.join(run, 'quantized.pth'))
        return {n: m for n, m in model.named_modules()
                if isinstance(m, (QuantLinear, QuantConv2d)) and n.startswith(tuple(args.prefixes))}

    ref = weighted_ops(args.calib_run)
    print('| run | weight roundings changed | input scale change, median | max |')
    print('|---|---|---|---|')
    for run in args.runs:
        changed = total = 0
        rel = []
        with torch.no_grad():
            for name, op in weighted_ops(run).items():
                r = ref[name]
                steps = ((op.w_quant(op.weight) - r.w_quant(r.weight)) / r.w_quant.scale).round()
                changed += int((steps != 0).sum())
                total += steps.numel()
                rel.append(float(((op.a_quant.scale - r.a_quant.scale).abs() / r.a_quant.scale).max()))
        rel.sort()
        print(f'| {osp.basename(osp.normpath(run))} | {100 * changed / total:.2f} % of {total} | '
              f'{100 * rel[len(rel) // 2]:.1f} % | {100 * rel[-1]:.1f} % |')


if __name__ == '__main__':
    main()
