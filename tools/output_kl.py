#!/usr/bin/env python
"""Output KL of quantized detectors to their FP detector, on evaluation images.

    python tools/output_kl.py CONFIG CHECKPOINT RUN [RUN ...] [--images 100] [--out FILE.md]

A RUN is a work dir of tools/quant_test.py (or its quantized.pth), optionally named
``label=PATH``. For each evaluation image the FP detector fixes its proposals and top
detections; every run's outputs on them (RPN objectness and deltas, RoI class logits and
deltas of every stage, mask logits) are compared with the FP outputs by the KL of stage B
(ALGORITHM §3.2) at temperature ``--temperature`` (1: the plain KL). The table gives the mean
KL per image and per output (cascade stages summed), the box/mask AP of the run's
results.json when there is one, each run's paired difference to the reference run
(``--ref LABEL``, default the first) with twice its standard error (a difference larger than
that is not evaluation-image noise), and on how many images the run's KL is the lower.
The per-image values go to the JSON beside ``--out``.
"""
import argparse
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from fimaq.engine.cli import DictAction, load_config, run_cli  # noqa: E402
from fimaq.engine.errors import UserError  # noqa: E402

TERMS = ('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg', 'mask')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='KL of quantized detectors\' outputs to the FP detector')
    p.add_argument('config', help='the detector config')
    p.add_argument('checkpoint', help='its FP checkpoint')
    p.add_argument('runs', nargs='+', metavar='RUN',
                   help='[label=]work dir of tools/quant_test.py or its quantized.pth')
    p.add_argument('--images', type=int, default=100, help='evaluation images (the first N of the test split)')
    p.add_argument('--temperature', type=float, default=1.0, help='softmax/sigmoid temperature of the KL')
    p.add_argument('--ref', help='label of the run the others are compared with (default: the first)')
    p.add_argument('--out', help='Markdown table (JSON with per-image values beside it)')
    p.add_argument('--threads', type=int, help='torch CPU threads')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return p.parse_args(argv)


def resolve_run(spec: str) -> tuple[str, str]:
    """``label=path`` or ``path`` -> (label, quantized.pth path)."""
    label, _, path = spec.rpartition('=') if '=' in spec else ('', '', spec)
    pth = osp.join(path, 'quantized.pth') if osp.isdir(path) else path
    if not osp.isfile(pth):
        raise UserError(f'run {spec}: no quantized model at {pth}; pass a work dir of '
                        'tools/quant_test.py (it writes quantized.pth) or the .pth itself')
    return label or osp.basename(osp.dirname(osp.abspath(pth))), pth


def run_ap(pth: str) -> str:
    import json
    res = osp.join(osp.dirname(pth), 'results.json')
    if not osp.isfile(res):
        return ''
    m = json.load(open(res)).get('metrics', {})
    box, mask = m.get('coco/bbox_mAP'), m.get('coco/segm_mAP')
    fmt = lambda v: '' if v is None else f'{100 * v:.1f}'  # noqa: E731
    return f'{fmt(box)} / {fmt(mask)}'


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = [resolve_run(s) for s in args.runs]
    labels = [label for label, _ in runs]
    if args.ref is not None and args.ref not in labels:
        raise UserError(f'--ref {args.ref}: no run has that label; labels: {", ".join(labels)}')
    if args.images < 1:
        raise UserError(f'--images {args.images}: need at least 1')
    if not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint {args.checkpoint} does not exist; pass the FP .pth of the config')
    cfg = load_config(args.config, args.cfg_options)

    import torch

    from fimaq.engine.checkpoint import build_detector, load_quantized
    from fimaq.engine.data import ensure_generated_dataset
    from fimaq.engine.fidelity import (eval_batches, fp_reference, group_terms, mean_and_stderr,
                                       output_kl_per_image)
    from fimaq.engine.report import atomic_write_text, write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    ensure_generated_dataset(cfg)
    model = build_detector(cfg, args.checkpoint)
    batches = eval_batches(cfg, model, args.images)
    t0 = time.time()
    reference = fp_reference(model, batches)
    print(f'[output_kl] FP reference on {len(batches)} evaluation images ({time.time() - t0:.0f} s)', flush=True)
    results = []
    for label, pth in runs:
        t0 = time.time()
        model = build_detector(cfg, args.checkpoint)   # load_quantized rebuilds its ops in place
        _, qcfg = load_quantized(model, pth)
        per_image = output_kl_per_image(model, reference, batches, args.temperature)
        grouped = [group_terms(r) for r in per_image]
        totals = [sum(r.values()) for r in grouped]
        results.append(dict(label=label, path=pth, method=qcfg.method,
                            bits=f'W{qcfg.w_bits}A{qcfg.a_bits}', ap=run_ap(pth), totals=totals,
                            per_image=[{k: float(f'{v:.6g}') for k, v in r.items()} for r in grouped]))
        print(f'[output_kl] {label}: KL {sum(totals) / len(totals):.4g} ({time.time() - t0:.0f} s)', flush=True)

    ref = next(r for r in results if r['label'] == args.ref) if args.ref is not None else results[0]
    head = ['run', 'method', 'W/A', 'box / mask AP', 'KL per image', f'Δ vs {ref["label"]} ± 2 s.e.',
            'lower on', *TERMS]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in results:
        mean, _ = mean_and_stderr(r['totals'])
        d_mean, d_se = mean_and_stderr([a - b for a, b in zip(r['totals'], ref['totals'])])
        diff = '' if r is ref else f'{d_mean:+.3g} ± {2 * d_se:.2g}'
        lower = '' if r is ref else \
            f'{sum(a < b for a, b in zip(r["totals"], ref["totals"]))}/{len(r["totals"])}'
        terms = [f'{sum(x.get(t, 0.0) for x in r["per_image"]) / len(r["per_image"]):.3g}' for t in TERMS]
        lines.append('| ' + ' | '.join([r['label'], r['method'], r['bits'], r['ap'], f'{mean:.4g}',
                                         diff, lower, *terms]) + ' |')
    table = '\n'.join(lines)
    print(f'\nOutput KL to FP (T = {args.temperature:g}) on {len(batches)} evaluation images of '
          f'{osp.basename(args.config)}\n\n{table}\n')
    if args.out:
        atomic_write_text(args.out, f'Output KL to FP (T = {args.temperature:g}), {len(batches)} '
                          f'evaluation images, `{args.config}`\n\n{table}\n')
        out_json = osp.splitext(args.out)[0] + '.json'
        write_json(out_json, dict(config=args.config, checkpoint=args.checkpoint,
                                  temperature=args.temperature, images=len(batches), runs=results))
        print(f'[output_kl] table: {osp.abspath(args.out)}; per-image values: {osp.abspath(out_json)}')
    return 0


if __name__ == '__main__':
    run_cli(main)
