#!/usr/bin/env python
"""Run a grid of detectors × methods × bit widths × seeds through tools/quant_test.py.

Every cell runs `tools/quant_test.py` (the user's code path) in its own process and work dir
``WORK_DIR/<config name>/<method>_w<b>a<b>[_seed<s>]``. A cell whose results.json exists is
skipped, so an interrupted sweep resumes where it stopped; a failing cell is recorded in
``WORK_DIR/sweep_status.json`` and the sweep goes on. Stage B methods reuse the stage A
result (stage_a.pth) of the ``calib`` cell with the same detector, bits and seed when it
exists, so stage A runs once per grid point; ``calib`` cells therefore run first.

    python tools/sweep.py --models mask cascade --methods fp minmax calib --bits 8 6 4 3
    python tools/sweep.py --grid benchmarks/embedded_sweep.py        # a grid file (below)
    python tools/sweep.py --grid G.py --methods fimaq --bits 4        # the command line wins

A grid file is an mmengine config with any of: ``models`` (tiny names ``mask``/``cascade``/``vit``
or ``CONFIG:CHECKPOINT``), ``methods``, ``bits``, ``seeds``, ``quant_options`` (every cell),
``recon_options`` (stage B methods only), ``work_dir``, ``threads``, ``out``.
The summary table (AP and seconds per cell) goes to ``--out``; paper-style tables come from
`tools/make_table.py WORK_DIR`.
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

from fimaq.config import METHODS  # noqa: E402
from fimaq.engine.report import ap_table, atomic_write_text, write_json  # noqa: E402

TINY = {
    'mask': ('mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py',
             'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth'),
    'cascade': ('mmdet_configs/tiny/cascade-mask-rcnn_swin-tiny_fpn_shapes.py',
                'checkpoints/cascade-mask-rcnn_swin-tiny_fpn_shapes.pth'),
    'vit': ('mmdet_configs/tiny/mask-rcnn_vit-tiny_fpn_shapes.py',
            'checkpoints/mask-rcnn_vit-tiny_fpn_shapes.pth'),
}
DEFAULTS = dict(models=['mask', 'cascade'], methods=['fp', 'minmax', 'calib'], bits=[8, 6, 4, 3],
                seeds=[0], quant_options=[], recon_options=[], work_dir='work_dirs/sweep',
                threads=None, out=None)
# Run order inside one (detector, bits, seed): calib before the methods that reuse its stage A.
ORDER = {m: i for i, m in enumerate(METHODS)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--grid', help='grid file (mmengine config) with the keys listed above')
    p.add_argument('--models', nargs='+', help='tiny names (mask, cascade, vit) or CONFIG:CHECKPOINT')
    p.add_argument('--methods', nargs='+', choices=tuple(METHODS))
    p.add_argument('--bits', nargs='+', type=int, help='W=A bit widths of the quantized methods')
    p.add_argument('--seeds', nargs='+', type=int)
    p.add_argument('--quant-options', nargs='+', help='--quant-options of every cell, e.g. calib_images=32')
    p.add_argument('--recon-options', nargs='+',
                   help='--quant-options of the stage B methods only, e.g. recon.iters=300 recon_images=16')
    p.add_argument('--work-dir')
    p.add_argument('--threads', type=int, help='torch threads per cell')
    p.add_argument('--out', help='summary table (Markdown; JSON beside it); default WORK_DIR/summary.md')
    p.add_argument('--dry-run', action='store_true', help='list the cells and what would run')
    p.add_argument('--collect-only', action='store_true',
                   help='run nothing: write the summary of the cells that have results')
    p.add_argument('--merge', metavar='SUMMARY_JSON',
                   help='start the summary from an earlier one (e.g. the checked-in '
                        'benchmarks/embedded_summary.json): its rows stay unless a cell of this '
                        'work dir has results for the same model, method, bits and seed')
    args = p.parse_args(argv)
    settings = dict(DEFAULTS)
    if args.grid:
        from mmengine.config import Config
        grid = Config.fromfile(args.grid).to_dict()
        unknown = sorted(set(grid) - set(DEFAULTS))
        if unknown:
            p.error(f'grid file {args.grid}: unknown key(s) {", ".join(unknown)}; '
                    f'known: {", ".join(DEFAULTS)}')
        settings.update(grid)
    for key in DEFAULTS:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    bad = [m for m in settings['methods'] if m not in METHODS]
    if bad:
        p.error(f'unknown method(s) {bad}; choose from {", ".join(METHODS)}')
    settings['out'] = settings['out'] or osp.join(settings['work_dir'], 'summary.md')
    settings['dry_run'] = args.dry_run
    settings['collect_only'] = args.collect_only
    settings['merge'] = args.merge
    return settings


def _row_key(row: dict) -> tuple:
    lab = row['label']
    return lab['model'], lab['method'], lab['W/A'], lab['seed']


def merge_rows(path: str, rows: list) -> list:
    """The rows of the summary JSON ``path``, each replaced by the row of ``rows`` for the same
    cell; the cells new to it are appended."""
    try:
        old = json.load(open(path))
        old_keys = [_row_key(r) for r in old]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SystemExit(f'error: --merge {path}: not a summary JSON written by tools/sweep.py ({exc!r})')
    new = {_row_key(r): r for r in rows}
    return [new.pop(k, r) for k, r in zip(old_keys, old)] + list(new.values())


def has_recon(method: str) -> bool:
    return bool(METHODS[method].get('recon'))


def model_paths(model: str) -> tuple[str, str]:
    if model in TINY:
        return TINY[model]
    if ':' not in model:
        raise SystemExit(f'error: model {model!r} is neither a tiny name ({", ".join(TINY)}) '
                         'nor CONFIG:CHECKPOINT')
    return tuple(model.split(':', 1))


def cell_tag(method: str, bits, seed: int) -> str:
    tag = 'fp' if bits is None else f'{method}_w{bits}a{bits}'
    return tag if seed == 0 else f'{tag}_seed{seed}'


def make_cells(s: dict) -> list[dict]:
    cells = []
    for model in s['models']:
        config, ckpt = model_paths(model)
        name = osp.splitext(osp.basename(config))[0]
        for seed in s['seeds']:
            for bits in s['bits']:
                for method in sorted(s['methods'], key=ORDER.get):
                    if method == 'fp' and bits != s['bits'][0]:
                        continue  # one FP cell per detector and seed
                    b = None if method == 'fp' else bits
                    work = osp.join(s['work_dir'], name, cell_tag(method, b, seed))
                    calib = osp.join(s['work_dir'], name, cell_tag('calib', bits, seed))
                    cells.append(dict(model=name, config=config, checkpoint=ckpt, method=method,
                                      bits=b, seed=seed, work_dir=work, calib_dir=calib))
    return cells


def cell_command(cell: dict, s: dict) -> list[str]:
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'quant_test.py'), cell['config'],
           cell['checkpoint'], '--work-dir', cell['work_dir'], '--method', cell['method']]
    if cell['bits'] is not None:
        cmd += ['--w-bits', str(cell['bits']), '--a-bits', str(cell['bits'])]
    options = list(s['quant_options']) + (list(s['recon_options']) if has_recon(cell['method']) else [])
    if cell['seed']:
        options.append(f'seed={cell["seed"]}')
    if cell['method'] != 'fp' and options:
        cmd += ['--quant-options', *options]
    stage_a = osp.join(cell['calib_dir'], 'stage_a.pth')
    if has_recon(cell['method']) and osp.isfile(stage_a):
        cmd += ['--stage-a', stage_a]
    if s['threads']:
        cmd += ['--threads', str(s['threads'])]
    return cmd


def main(argv=None) -> int:
    s = parse_args(argv)
    cells = make_cells(s)
    status_file = osp.join(s['work_dir'], 'sweep_status.json')
    status = json.load(open(status_file)) if osp.isfile(status_file) else {}
    todo = [] if s['collect_only'] else \
        [c for c in cells if not osp.isfile(osp.join(c['work_dir'], 'results.json'))]
    print(f'[sweep] {len(cells)} cells, {len(cells) - len(todo)} done, {len(todo)} to run; '
          f'work dir {osp.abspath(s["work_dir"])}', flush=True)
    spent: list[float] = []
    for i, cell in enumerate(todo):
        cmd = cell_command(cell, s)
        key = osp.relpath(cell['work_dir'], s['work_dir'])
        if s['dry_run']:
            print(f'[sweep] would run {key}: {" ".join(cmd)}')
            continue
        if osp.isfile(osp.join(cell['work_dir'], 'results.json')):
            print(f'[sweep] {key}: results appeared meanwhile (another sweep?); skipped')
            continue
        left = f', ~{sum(spent) / len(spent) * (len(todo) - i) / 60:.0f} min left' if spent else ''
        print(f'[sweep] ({i + 1}/{len(todo)}{left}) {key}', flush=True)
        os.makedirs(cell['work_dir'], exist_ok=True)
        t0 = time.time()
        with open(osp.join(cell['work_dir'], 'sweep_cell.log'), 'w') as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        spent.append(time.time() - t0)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            status[key] = dict(state='failed', returncode=proc.returncode,
                               error=lines[-1] if lines else '', command=cmd)
            print(f'[sweep] {key} FAILED (exit {proc.returncode}): {status[key]["error"]}', flush=True)
        else:
            status[key] = dict(state='done', seconds=round(spent[-1], 1), command=cmd)
            print(f'[sweep] {key} done in {spent[-1]:.0f} s', flush=True)
        write_json(status_file, status)
    if s['dry_run']:
        return 0
    rows = []
    for cell in cells:
        path = osp.join(cell['work_dir'], 'results.json')
        if not osp.isfile(path):
            continue
        res = json.load(open(path))
        rows.append(dict(label={'model': cell['model'], 'method': cell['method'],
                                'W/A': 'FP' if cell['bits'] is None else f'W{cell["bits"]}A{cell["bits"]}',
                                'seed': cell['seed'],
                                'stage A s': f'{res.get("stage_a_seconds") or 0:.0f}',
                                'total quant s': f'{res.get("calib_seconds", 0):.0f}',
                                'peak RSS MiB': f'{res.get("peak_rss_mb") or 0:.0f}'},
                         metrics=res['metrics']))
    if s['merge']:
        rows = merge_rows(s['merge'], rows)
    table = ap_table(rows)
    print('\n' + table)
    atomic_write_text(s['out'], table + '\n')
    write_json(osp.splitext(s['out'])[0] + '.json', rows)
    failed = [k for k, v in status.items() if v['state'] == 'failed'
              and not osp.isfile(osp.join(s['work_dir'], k, 'results.json'))]
    print(f'[sweep] summary written to {osp.abspath(s["out"])}; status in {osp.abspath(status_file)}'
          + (f'; {len(failed)} failed cell(s): {", ".join(failed)}' if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
