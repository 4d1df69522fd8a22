#!/usr/bin/env python
"""Collect results.json files into paper-style AP tables (Markdown, CSV, LaTeX) and plots.

Rows are methods, column groups are detectors, cells are ``box AP / mask AP`` per bit width
(mean over seeds; ``±`` the spread when there are several). FP is the first row. Where the
published tables (``--published``, default benchmarks/published_coco.json) have a number for
the same detector and bit width (the first confirmed value of the file, else the first,
marked ``?``), it sits in the adjacent "published" column: for our
``fimaq`` the published FIMA-Q, for ``mse`` the published QDrop (its closest counterpart),
and the published methods we do not implement get rows of their own.

    python tools/make_table.py work_dirs/embedded_sweep --out benchmarks/embedded
    python tools/make_table.py benchmarks/embedded_summary.json --out /tmp/t   # checked-in sweep
    # -> benchmarks/embedded.md, .csv, .tex, _ap.png, _retention.png
"""
import argparse
import csv
import glob
import io
import json
import os.path as osp
import statistics
import sys
from collections import defaultdict

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from fimaq.config import METHODS  # noqa: E402
from fimaq.engine.report import atomic_write_text  # noqa: E402

# Our method -> the published method it corresponds to (for the adjacent column).
PUBLISHED_NAME = {'fp': 'FP', 'fimaq': 'FIMA-Q', 'mse': 'QDrop'}
DEFAULT_PUBLISHED = osp.join(REPO_ROOT, 'benchmarks', 'published_coco.json')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('dirs', nargs='+', metavar='SOURCE',
                   help='work dirs searched (recursively) for results.json, or summary .json '
                        'files of tools/sweep.py (e.g. benchmarks/embedded_summary.json)')
    p.add_argument('--out', required=True, help='output path without extension')
    p.add_argument('--published', default=DEFAULT_PUBLISHED,
                   help='published numbers (JSON); "none" to leave them out')
    p.add_argument('--bits', nargs='+', type=int, help='bit widths to show (default: all found)')
    p.add_argument('--label', nargs='+', default=[], metavar='MODEL=LABEL',
                   help='show a detector (config name) under a shorter label')
    p.add_argument('--no-plots', action='store_true')
    return p.parse_args(argv)


def _add(cells, model: str, method: str, w_bits, a_bits, metrics: dict) -> None:
    if 'coco/bbox_mAP' not in metrics:
        return
    bits = w_bits if method != 'fp' else None
    if bits is not None and a_bits != bits:
        bits = f'W{bits}A{a_bits}'
    cells[(model, method, bits)].append(
        (100 * metrics['coco/bbox_mAP'], 100 * metrics.get('coco/segm_mAP', float('nan'))))


def _summary_rows(path: str) -> list:
    """The rows of a tools/sweep.py summary JSON, or a one-line error naming the file."""
    try:
        rows = json.load(open(path))
        for row in rows:
            row['label']['model'], row['label']['method'], row['label']['W/A'], row['metrics']
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SystemExit(f'error: {path} is not a tools/sweep.py summary JSON ({exc!r}); pass a '
                         'work dir or the .json written beside the sweep\'s summary.md')
    return rows


def collect(sources) -> dict:
    """{(model, method, bits or None): [(box, mask), ...]} over every results.json found in the
    work dirs of ``sources`` and every row of the sweep summaries (``*.json`` files) among them."""
    cells = defaultdict(list)
    for src in sources:
        if osp.isfile(src):
            for row in _summary_rows(src):
                lab = row['label']
                w_bits, a_bits = (None, None) if lab['W/A'] == 'FP' else \
                    map(int, lab['W/A'][1:].split('A'))
                _add(cells, lab['model'], lab['method'], w_bits, a_bits, row['metrics'])
            continue
        for path in sorted(glob.glob(osp.join(src, '**', 'results.json'), recursive=True)):
            res = json.load(open(path))
            if 'config' not in res:
                continue
            model = osp.splitext(osp.basename(res['config']))[0]
            _add(cells, model, res['method'], res.get('w_bits'), res.get('a_bits'),
                 res.get('metrics', {}))
    return cells


def load_published(path: str):
    if not path or path == 'none' or not osp.isfile(path):
        return None
    return json.load(open(path))


def published_key(model: str, pub) -> str | None:
    """The published detector key our model name stands for (``key``, ``key_...``, ``key-...``)."""
    if pub is None:
        return None
    for key in pub.get('fp', {}):
        if model == key or model.startswith(key + '_') or model.startswith(key + '-'):
            return key
    return None


def bits_label(bits) -> str:
    return 'FP' if bits is None else (bits if isinstance(bits, str) else f'W{bits}A{bits}')


def fmt(values) -> str:
    if not values:
        return '-'
    box = [v[0] for v in values]
    mask = [v[1] for v in values]
    if len(values) == 1:
        return f'{box[0]:.1f} / {mask[0]:.1f}'
    return (f'{statistics.mean(box):.1f}±{statistics.pstdev(box):.1f} / '
            f'{statistics.mean(mask):.1f}±{statistics.pstdev(mask):.1f}')


def build_table(cells: dict, pub, bits_filter=None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table (strings), shared by every output format."""
    models = sorted({k[0] for k in cells})
    bits_all = sorted({k[2] for k in cells if k[2] is not None},
                      key=lambda b: (isinstance(b, str), -b if isinstance(b, int) else b))
    if bits_filter:
        bits_all = [b for b in bits_all if b in bits_filter]
    methods = [m for m in METHODS if any(k[1] == m for k in cells)]
    pub_rows = defaultdict(dict)   # (published method) -> {(pkey, bits label): (box, mask, uncertain)}
    if pub is not None:
        for r in pub.get('results', []):  # per cell: the first confirmed value, else the first
            cur = pub_rows[r['method']].get((r['model'], r['bits']))
            if cur is None or (cur[2] and not r.get('uncertain', False)):
                pub_rows[r['method']][(r['model'], r['bits'])] = (r['box'], r['mask'], r.get('uncertain', False))
        for key, v in pub.get('fp', {}).items():
            pub_rows['FP'][(key, 'FP')] = (v['box'], v['mask'], False)
    columns = []          # (model, bits, 'ours'|'published')
    for model in models:
        pkey = published_key(model, pub)
        for bits in [None] + bits_all:
            if bits is None and not any(k[0] == model and k[2] is None for k in cells):
                continue
            columns.append((model, bits, 'ours'))
            if pkey and any((pkey, bits_label(bits)) in rows for rows in pub_rows.values()):
                columns.append((model, bits, 'published'))
    header = ['method'] + [f'{m} {bits_label(b)}' + (' (published)' if kind == 'published' else '')
                           for m, b, kind in columns]

    def pub_cell(name, model, bits):
        pkey = published_key(model, pub)
        v = pub_rows.get(name, {}).get((pkey, bits_label(bits))) if pkey else None
        return '-' if v is None else f'{v[0]:.1f} / {v[1]:.1f}' + ('?' if v[2] else '')

    rows = []
    for method in methods:
        row = [method]
        for model, bits, kind in columns:
            if kind == 'ours':
                ours_bits = None if method == 'fp' else bits
                row.append(fmt(cells.get((model, method, ours_bits))) if (method == 'fp') == (bits is None) else '')
            else:
                row.append(pub_cell(PUBLISHED_NAME.get(method), model, bits) if (method == 'fp') == (bits is None) else '')
        rows.append(row)
    ours_published = {PUBLISHED_NAME.get(m) for m in methods}
    for name in sorted(n for n in pub_rows if n not in ours_published):
        row = [f'{name} (published)']
        for model, bits, kind in columns:
            row.append(pub_cell(name, model, bits) if kind == 'published' and bits is not None else '')
        if any(c not in ('', '-') for c in row[1:]):
            rows.append(row)
    return header, rows


def to_markdown(header, rows) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] * len(header)) + '|']
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines)


def to_csv(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def to_latex(header, rows) -> str:
    def esc(s):
        return s.replace('_', r'\_').replace('±', r'$\pm$').replace('%', r'\%')
    lines = [r'\begin{tabular}{l' + 'c' * (len(header) - 1) + '}', r'\toprule',
             ' & '.join(esc(h) for h in header) + r' \\', r'\midrule']
    lines += [' & '.join(esc(c) for c in r) + r' \\' for r in rows]
    lines += [r'\bottomrule', r'\end{tabular}']
    return '\n'.join(lines)


def plot(cells: dict, out: str) -> list[str]:
    """AP vs bit width per method (box, mask) and AP retention (% of FP), one panel per detector."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = sorted({k[0] for k in cells})
    written = []
    for suffix, retention in (('_ap.png', False), ('_retention.png', True)):
        fig, axes = plt.subplots(len(models), 2, figsize=(10, 3.6 * len(models)), squeeze=False)
        for row, model in enumerate(models):
            fp = cells.get((model, 'fp', None))
            for col, (idx, what) in enumerate(((0, 'box AP'), (1, 'mask AP'))):
                ax = axes[row][col]
                for method in METHODS:
                    pts = sorted((k[2], statistics.mean(v[idx] for v in vals)) for k, vals in cells.items()
                                 if k[0] == model and k[1] == method and isinstance(k[2], int))
                    if not pts or (retention and not fp):
                        continue
                    base = statistics.mean(v[idx] for v in fp) if retention else 1.0
                    ys = [100 * y / base if retention else y for _, y in pts]
                    ax.plot([b for b, _ in pts], ys, marker='o', label=method)
                if fp and not retention:
                    ax.axhline(statistics.mean(v[idx] for v in fp), color='k', ls='--', lw=1, label='fp')
                ax.set_title(f'{model}: {what}' + (' (% of FP)' if retention else ''), fontsize=9)
                ax.set_xlabel('bits (W = A)')
                ax.set_ylabel('% of FP' if retention else what)
                ax.grid(alpha=0.3)
        legend = {}
        for ax in axes.flat:   # every method that appears in any panel
            for h, lab in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(lab, h)
        labels, handles = list(legend), list(legend.values())
        if handles:
            fig.legend(handles, labels, loc='lower center', ncol=min(9, len(labels)), fontsize=8)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        path = out + suffix
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    cells = collect(args.dirs)
    labels = dict(item.split('=', 1) for item in args.label)
    cells = {(labels.get(m, m), meth, b): v for (m, meth, b), v in cells.items()}
    if not cells:
        print(f'error: no results.json with COCO metrics under {", ".join(args.dirs)}; run '
              'tools/quant_test.py or tools/sweep.py first', file=sys.stderr)
        return 2
    pub = load_published(args.published)
    header, rows = build_table(cells, pub, args.bits)
    md = to_markdown(header, rows)
    atomic_write_text(args.out + '.md', md + '\n')
    atomic_write_text(args.out + '.csv', to_csv(header, rows))
    atomic_write_text(args.out + '.tex', to_latex(header, rows) + '\n')
    written = [args.out + ext for ext in ('.md', '.csv', '.tex')]
    if not args.no_plots:
        written += plot(cells, args.out)
    print(md)
    print(f'[make_table] {sum(len(v) for v in cells.values())} results -> {", ".join(written)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
