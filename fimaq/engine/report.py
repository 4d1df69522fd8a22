"""Results → tables: the AP table the tools print and cocoapi-style summary lines."""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from typing import Iterable, Mapping, Sequence

# (column title, metric key without the 'coco/<iou_type>_' prefix)
BOX_COLUMNS = (('box AP', 'mAP'), ('AP50', 'mAP_50'), ('AP75', 'mAP_75'),
               ('APs', 'mAP_s'), ('APm', 'mAP_m'), ('APl', 'mAP_l'))
MASK_COLUMNS = (('mask AP', 'mAP'), ('AP50', 'mAP_50'), ('AP75', 'mAP_75'),
                ('APs', 'mAP_s'), ('APm', 'mAP_m'), ('APl', 'mAP_l'))


def _fmt(value) -> str:
    return '-' if value is None else f'{100 * float(value):.1f}'


def ap_table(rows: Sequence[Mapping], metric_prefix: str = 'coco/') -> str:
    """Markdown table, one row per result: label columns then box and mask AP (in %).

    Each row is ``{'label': {...ordered label columns...}, 'metrics': {...}}`` where metrics
    use mmdet's names (``coco/bbox_mAP`` ...).
    """
    if not rows:
        return ''
    label_cols = list(rows[0]['label'])
    head = label_cols + [c for c, _ in BOX_COLUMNS] + [c for c, _ in MASK_COLUMNS]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join(['---'] * len(head)) + '|']
    for row in rows:
        m = row['metrics']
        cells = [str(row['label'][c]) for c in label_cols]
        cells += [_fmt(m.get(f'{metric_prefix}bbox_{k}')) for _, k in BOX_COLUMNS]
        cells += [_fmt(m.get(f'{metric_prefix}segm_{k}')) for _, k in MASK_COLUMNS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _max_dets(metrics: Mapping, prefix: str) -> tuple[int, int, int]:
    dets = sorted({int(m.group(1)) for k in metrics
                   if (m := re.fullmatch(re.escape(prefix) + r'AR@(\d+)', k))})
    if len(dets) != 3:
        raise KeyError(f'no three AR@N entries under {prefix!r}: evaluate with CocoDetMetric')
    return dets[0], dets[1], dets[2]


def coco_summary_lines(metrics: Mapping, iou_type: str, metric_prefix: str = 'coco/') -> list[str]:
    """The twelve summary lines in the layout of cocoapi's published printout, from our results."""
    p = f'{metric_prefix}{iou_type}_'
    d1, d2, d3 = _max_dets(metrics, p)
    spec = [  # (AP or AR, iou, area, maxDets, key)
        (1, None, 'all', d3, 'mAP'), (1, .5, 'all', d3, 'mAP_50'), (1, .75, 'all', d3, 'mAP_75'),
        (1, None, 'small', d3, 'mAP_s'), (1, None, 'medium', d3, 'mAP_m'),
        (1, None, 'large', d3, 'mAP_l'),
        (0, None, 'all', d1, f'AR@{d1}'), (0, None, 'all', d2, f'AR@{d2}'),
        (0, None, 'all', d3, f'AR@{d3}'), (0, None, 'small', d3, f'AR_s@{d3}'),
        (0, None, 'medium', d3, f'AR_m@{d3}'), (0, None, 'large', d3, f'AR_l@{d3}'),
    ]
    lines = []
    for ap, iou, area, dets, key in spec:
        title = 'Average Precision' if ap else 'Average Recall'
        kind = '(AP)' if ap else '(AR)'
        iou_str = '0.50:0.95' if iou is None else f'{iou:0.2f}'
        lines.append(f' {title:<18}{kind} @[ IoU={iou_str:<9} | area={area:>6s} | '
                     f'maxDets={dets:>3d} ] = {float(metrics[p + key]):0.3f}')
    return lines


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically,
    so readers see the old or the new file, never a partial one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            f.write(text)


def write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + '\n')


def only_metrics(metrics: Mapping, prefixes: Iterable[str] = ('coco/',)) -> dict:
    """Plain-float copy of the evaluator's output (drops anything not JSON-serialisable)."""
    return {k: float(v) for k, v in metrics.items()
            if any(k.startswith(p) for p in prefixes) and isinstance(v, (int, float))}


def _range(t) -> str:
    return f'{float(t.min()):.3g}..{float(t.max()):.3g}'


def quant_layer_table(qm) -> str:
    """Markdown: every quantized op (name, kind, bits, granularity, scale ranges) and FP layers."""
    lines = ['| layer | kind | W bits | A bits | granularity | weight scales | input scales | FP |',
             '|---|---|---|---|---|---|---|---|']
    for name, op in qm.layers.items():
        kind = type(op).__name__.replace('Quant', '')
        lines.append(f'| {name} | {kind} | {op.w_bits} | {op.a_quant.bits} | W per out-channel, '
                     f'A per tensor | {_range(op.w_quant.scale)} | {_range(op.a_quant.scale)} | no |')
    for name, op in qm.matmuls.items():
        lines.append(f'| {name} | MatMul | - | {op.a_bits} | A, B per head '
                     f'({type(op.quant_a).__name__.replace("Quantizer", "").lower()} A) | - | '
                     f'{_range(op.quant_a.scale)} / {_range(op.quant_b.scale)} | no |')
    for name, why in qm.fp_modules.items():
        lines.append(f'| {name} | {why} | - | - | - | - | - | yes |')
    return '\n'.join(lines)
