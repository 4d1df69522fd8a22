#!/usr/bin/env python
"""Benchmark quantization methods × bit widths on detectors; print and save an AP table.

Every cell runs `tools/quant_test.py` (the user's code path) in its own process and work
dir; a cell whose results.json exists is reused, so an interrupted benchmark resumes.

    python tools/benchmark_quant.py                 # both tiny detectors, fp/minmax/calib,
                                                    # W8A8 W6A6 W4A4 W3A3
    python tools/benchmark_quant.py --models mask --methods fp calib --bits 4 --out benchmarks/x.md
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from fimaq.engine.report import ap_table, atomic_write_text, write_json  # noqa: E402

TINY = {
    'mask': ('mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py',
             'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth'),
    'cascade': ('mmdet_configs/tiny/cascade-mask-rcnn_swin-tiny_fpn_shapes.py',
                'checkpoints/cascade-mask-rcnn_swin-tiny_fpn_shapes.pth'),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=list(TINY),
                   help='tiny model names (mask, cascade) or CONFIG:CHECKPOINT pairs')
    p.add_argument('--methods', nargs='+', default=['fp', 'minmax', 'calib'])
    p.add_argument('--bits', nargs='+', type=int, default=[8, 6, 4, 3],
                   help='W=A bit widths for the quantized methods')
    p.add_argument('--work-dir', default='work_dirs/benchmark_quant')
    p.add_argument('--out', default='benchmarks/stage_a.md', help='markdown table (json beside it)')
    p.add_argument('--collect-only', action='store_true',
                   help='run nothing: tabulate the cells whose results exist, list the others')
    p.add_argument('--extra', nargs=argparse.REMAINDER, default=[],
                   help='arguments passed to every quant_test.py run (after --extra)')
    return p.parse_args()


def cells(args):
    for model in args.models:
        config, ckpt = TINY[model] if model in TINY else model.split(':', 1)
        for method in args.methods:
            for bits in ([None] if method == 'fp' else args.bits):
                yield config, ckpt, method, bits


def main() -> int:
    args = parse_args()
    os.chdir(REPO_ROOT)
    todo = list(cells(args))
    rows = []
    t_start = time.time()
    for i, (config, ckpt, method, bits) in enumerate(todo):
        name = osp.splitext(osp.basename(config))[0]
        tag = 'fp' if bits is None else f'{method}_w{bits}a{bits}'
        work = osp.join(args.work_dir, name, tag)
        result_file = osp.join(work, 'results.json')
        if not osp.isfile(result_file) and args.collect_only:
            print(f'[benchmark] {name} {tag}: no results yet ({result_file})')
            continue
        if not osp.isfile(result_file):
            cmd = [sys.executable, 'tools/quant_test.py', config, ckpt, '--work-dir', work,
                   '--method', method] + ([] if bits is None else ['--w-bits', str(bits),
                                                                  '--a-bits', str(bits)]) + args.extra
            print(f'[benchmark] ({i + 1}/{len(todo)}) {name} {tag}: {" ".join(cmd)}', flush=True)
            t0 = time.time()
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                print(f'[benchmark] {name} {tag} failed: {proc.stderr.strip().splitlines()[-1:]}')
                continue
            print(f'[benchmark] {name} {tag} done in {time.time() - t0:.0f} s '
                  f'({time.time() - t_start:.0f} s so far)', flush=True)
        res = json.load(open(result_file))
        rows.append(dict(label={'model': name, 'method': method,
                                'W/A': 'FP' if bits is None else f'W{bits}A{bits}',
                                'calib s': f'{res.get("calib_seconds", 0):.0f}',
                                'eval s': f'{res.get("eval_seconds", 0):.0f}'},
                         metrics=res['metrics']))
    table = ap_table(rows)
    print('\n' + table)
    atomic_write_text(args.out, table + '\n')
    write_json(osp.splitext(args.out)[0] + '.json', rows)
    print(f'[benchmark] table written to {osp.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
