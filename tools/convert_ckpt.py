#!/usr/bin/env python
"""Convert a Swin-Transformer-Object-Detection checkpoint to the mmdet 3.3 layout.

    python tools/convert_ckpt.py SRC DST [--config CFG] [--allow-unknown]

SRC is a checkpoint of github.com/SwinTransformer/Swin-Transformer-Object-Detection (an
mmdet 2.11 fork; e.g. mask_rcnn_swin_tiny_patch4_window7.pth). DST is written atomically as
``{'state_dict': ..., 'meta': {...}}`` and loads with ``strict=True`` into the model of the
matching mmdet_configs/swin/ config (give that config as --config to check it here).

What changes (everything else is copied unchanged):

* backbone names: the release's own SwinTransformer -> mmdet's SwinTransformer
  (``layers.N`` -> ``stages.N``, ``patch_embed.proj`` -> ``patch_embed.projection``,
  ``attn.*`` -> ``attn.w_msa.*``, ``mlp.fc1`` -> ``ffn.layers.0.0``, ``mlp.fc2`` ->
  ``ffn.layers.1``; ``norm1``/``norm2``, ``downsample.*`` and ``norm0..3`` keep their names);
* patch merging channel order: the release concatenates the four 2x2 neighbours as blocks of
  C channels, [x0, x1, x2, x3] with x0 = (0::2, 0::2), x1 = (1::2, 0::2), x2 = (0::2, 1::2),
  x3 = (1::2, 1::2) as (row, column) slices; mmdet's PatchMerging uses nn.Unfold, whose
  feature c*4 + k is channel c at kernel position k = (0,0), (0,1), (1,0), (1,1) row-major.
  The ``downsample.reduction`` weight columns and the ``downsample.norm`` weight/bias are
  permuted accordingly;
* neck, RPN and RoI heads: mmdet 2.x and 3.x use the same names (``neck.lateral_convs.i.conv``,
  ``rpn_head.rpn_conv/rpn_cls/rpn_reg``, ``roi_head.bbox_head[.s].shared_convs/shared_fcs/
  fc_cls/fc_reg``, ``roi_head.mask_head[.s].convs/upsample/conv_logits``), copied as they are.

Keys the converter does not know (or, with --config, that the model does not have) are listed
and make it exit with status 1 without writing DST, unless --allow-unknown (then they are
listed, dropped and recorded in DST's meta). Without --config only the backbone is checked
key by key; with it every key, and every shape, is checked against the model.

SRC is read with ``torch.load(weights_only=False)``, as every local checkpoint in fimaq
(fimaq/engine/checkpoint.py): only convert files you trust.
"""
from __future__ import annotations

import argparse
import hashlib
import os.path as osp
import re
import sys
from collections import OrderedDict

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

from fimaq.engine.errors import UserError  # noqa: E402

# Unfold kernel position k (row-major (0,0), (0,1), (1,0), (1,1)) holds the release's
# neighbour block UNFOLD_TO_RELEASE[k] (x0 = (0,0), x1 = (1,0), x2 = (0,1), x3 = (1,1)).
# The permutation is its own inverse.
UNFOLD_TO_RELEASE = (0, 2, 1, 3)

# Non-backbone parts whose names mmdet 2.x and 3.x share (checked key by key with --config).
PASS_THROUGH_PREFIXES = ('neck.', 'rpn_head.', 'roi_head.')

_BLOCK = r'layers\.(\d+)\.blocks\.(\d+)\.'
# (release pattern, mmdet template); the inverse table is derived below.
_RELEASE_TO_MMDET = [
    (r'patch_embed\.proj\.(weight|bias)', r'patch_embed.projection.{0}'),
    (r'patch_embed\.norm\.(weight|bias)', r'patch_embed.norm.{0}'),
    (_BLOCK + r'norm([12])\.(weight|bias)', r'stages.{0}.blocks.{1}.norm{2}.{3}'),
    (_BLOCK + r'attn\.(qkv|proj)\.(weight|bias)', r'stages.{0}.blocks.{1}.attn.w_msa.{2}.{3}'),
    (_BLOCK + r'attn\.(relative_position_bias_table|relative_position_index)',
     r'stages.{0}.blocks.{1}.attn.w_msa.{2}'),
    (_BLOCK + r'mlp\.fc1\.(weight|bias)', r'stages.{0}.blocks.{1}.ffn.layers.0.0.{2}'),
    (_BLOCK + r'mlp\.fc2\.(weight|bias)', r'stages.{0}.blocks.{1}.ffn.layers.1.{2}'),
    (r'layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)',
     r'stages.{0}.downsample.{1}'),
    (r'norm(\d+)\.(weight|bias)', r'norm{0}.{1}'),
]
_MMDET_TO_RELEASE = [
    (r'patch_embed\.projection\.(weight|bias)', r'patch_embed.proj.{0}'),
    (r'patch_embed\.norm\.(weight|bias)', r'patch_embed.norm.{0}'),
    (r'stages\.(\d+)\.blocks\.(\d+)\.norm([12])\.(weight|bias)', r'layers.{0}.blocks.{1}.norm{2}.{3}'),
    (r'stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.(qkv|proj)\.(weight|bias)',
     r'layers.{0}.blocks.{1}.attn.{2}.{3}'),
    (r'stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.(relative_position_bias_table|relative_position_index)',
     r'layers.{0}.blocks.{1}.attn.{2}'),
    (r'stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)', r'layers.{0}.blocks.{1}.mlp.fc1.{2}'),
    (r'stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.1\.(weight|bias)', r'layers.{0}.blocks.{1}.mlp.fc2.{2}'),
    (r'stages\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)',
     r'layers.{0}.downsample.{1}'),
    (r'norm(\d+)\.(weight|bias)', r'norm{0}.{1}'),
]


def _rename(name: str, table) -> str | None:
    for pattern, template in table:
        m = re.fullmatch(pattern, name)
        if m:
            return template.format(*m.groups())
    return None


def _permute_merge(t: torch.Tensor, to_mmdet: bool) -> torch.Tensor:
    """Reorder the 4*C patch-merging features (last dim) between release and Unfold order."""
    *lead, four_c = t.shape
    c = four_c // 4
    if to_mmdet:   # release [block j, channel c] -> Unfold [channel c, position k]
        t = t.reshape(*lead, 4, c)[..., UNFOLD_TO_RELEASE, :]
        return t.transpose(-1, -2).reshape(*lead, four_c).contiguous()
    t = t.reshape(*lead, c, 4).transpose(-1, -2)  # Unfold -> [position k, channel c]
    return t[..., UNFOLD_TO_RELEASE, :].reshape(*lead, four_c).contiguous()


def release_relative_position_index(window: int) -> torch.Tensor:
    """The release's WindowAttention.relative_position_index for a square window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij'))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def _convert_backbone(state: dict, to_mmdet: bool):
    """Rename (and permute) ``backbone.*`` keys; returns (converted, unknown names)."""
    table = _RELEASE_TO_MMDET if to_mmdet else _MMDET_TO_RELEASE
    out, unknown = OrderedDict(), []
    for key, value in state.items():
        new = _rename(key[len('backbone.'):], table)
        if new is None:
            unknown.append(key)
            continue
        if '.downsample.' in new:
            value = _permute_merge(value, to_mmdet)
        out['backbone.' + new] = value
    return out, unknown


def to_original(state: dict) -> OrderedDict:
    """An mmdet 3.3 Swin detector state dict in the release's (mmdet 2.x fork's) layout.

    The inverse of :func:`convert`; raises ``KeyError`` on a backbone key it cannot map.
    """
    backbone = {k: v for k, v in state.items() if k.startswith('backbone.')}
    converted, unknown = _convert_backbone(backbone, to_mmdet=False)
    if unknown:
        raise KeyError(f'backbone keys with no release name: {unknown[:5]}')
    out = OrderedDict()
    for key, value in state.items():
        if not key.startswith('backbone.'):
            out[key] = value
    out.update(converted)
    return out


def convert(state: dict, model_state: dict | None = None) -> tuple[OrderedDict, dict]:
    """Map a release state dict to mmdet 3.3 names; return (state, report).

    ``report`` has ``unknown`` (keys dropped: no mapping, or not in ``model_state``),
    ``filled`` (keys the source lacks and that are derived: the relative position index of
    the window attention, BN ``num_batches_tracked``), ``missing`` and ``wrong_shape``
    (against ``model_state``; either makes the result unloadable).
    """
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    backbone = {k: v for k, v in state.items() if k.startswith('backbone.')}
    out, unknown = _convert_backbone(backbone, to_mmdet=True)
    for key, value in state.items():
        if key.startswith('backbone.'):
            continue
        known = key in model_state if model_state is not None else key.startswith(PASS_THROUGH_PREFIXES)
        if known:
            out[key] = value
        else:
            unknown.append(key)
    filled = []
    # The release stores relative_position_index as a buffer; derive it if a file lacks it.
    for key in [k for k in out if k.endswith('.relative_position_bias_table')]:
        idx_key = key.replace('relative_position_bias_table', 'relative_position_index')
        if idx_key not in out:
            window = (int(round(out[key].shape[0] ** 0.5)) + 1) // 2
            out[idx_key] = release_relative_position_index(window)
            filled.append(idx_key)
    report = dict(unknown=unknown, filled=filled, missing=[], wrong_shape=[])
    if model_state is not None:
        for key in list(out):
            if key not in model_state:  # a renamed backbone key the model does not have
                report['unknown'].append(key)
                del out[key]
        for key, ref in model_state.items():
            if key not in out:
                if key.endswith('num_batches_tracked'):
                    out[key] = torch.zeros_like(ref)
                    filled.append(key)
                else:
                    report['missing'].append(key)
            elif tuple(out[key].shape) != tuple(ref.shape):
                report['wrong_shape'].append(f'{key}: {tuple(out[key].shape)} vs model {tuple(ref.shape)}')
        out = OrderedDict((k, out[k]) for k in model_state if k in out)  # the model's order
    return out, report


def build_model_state(config: str) -> dict:
    """The state dict of the (randomly initialised) model of an mmdet config."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from fimaq.engine.cli import load_config
    register_all_modules()
    cfg = load_config(config)
    return MODELS.build(cfg.model).state_dict()


def _plain_meta(meta) -> dict:
    """The JSON-like part of the source's meta (versions, epoch, classes), for provenance."""
    keep = {}
    for key in ('mmdet_version', 'mmcv_version', 'epoch', 'iter', 'time', 'CLASSES'):
        value = (meta or {}).get(key)
        if isinstance(value, (str, int, float)) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            keep[key] = list(value) if isinstance(value, tuple) else value
    return keep


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _listing(title: str, keys: list, limit: int = 40) -> str:
    lines = [f'{title} ({len(keys)}):'] + [f'  {k}' for k in keys[:limit]]
    if len(keys) > limit:
        lines.append(f'  ... and {len(keys) - limit} more')
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Convert a Swin-Transformer-Object-Detection checkpoint to mmdet 3.3 '
        '(loads strictly into the mmdet_configs/swin/ models)')
    p.add_argument('src', help='release checkpoint, e.g. mask_rcnn_swin_tiny_patch4_window7.pth')
    p.add_argument('dst', help='output .pth ({"state_dict", "meta"}), written atomically')
    p.add_argument('--config', help='check every key and shape against the model of this '
                   'config, e.g. mmdet_configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py')
    p.add_argument('--allow-unknown', action='store_true',
                   help='drop (and list) keys with no mmdet counterpart instead of failing')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from fimaq.engine.checkpoint import load_from_trusted_local
    from fimaq.engine.report import atomic_path
    if not osp.isfile(args.src):
        raise UserError(f'checkpoint {args.src} does not exist')
    try:
        ckpt = load_from_trusted_local(args.src, map_location='cpu')
    except Exception as exc:
        raise UserError(f'checkpoint {args.src} could not be read ({type(exc).__name__}: '
                        f'{str(exc).splitlines()[0][:120] if str(exc) else ""})') from None
    state = ckpt.get('state_dict', ckpt.get('model', ckpt)) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f'checkpoint {args.src} holds no state dict of tensors')
    model_state = build_model_state(args.config) if args.config else None

    out, report = convert(state, model_state)
    if report['filled']:
        print(_listing('[convert_ckpt] derived keys the source lacks', report['filled'], 8))
    failed = False
    if report['unknown']:
        print(_listing('[convert_ckpt] unknown keys' +
                       (' (dropped: --allow-unknown)' if args.allow_unknown else ''),
                       report['unknown']), file=sys.stderr)
        if any(k.startswith('backbone.stages.') for k in report['unknown']):
            print('[convert_ckpt] backbone.stages.* keys: SRC looks like an mmdet 3.x checkpoint '
                  'already; it needs no conversion', file=sys.stderr)
        failed |= not args.allow_unknown
    for what in ('missing', 'wrong_shape'):
        if report[what]:
            print(_listing(f'[convert_ckpt] {what.replace("_", " ")} keys (the model of '
                           f'{args.config} would not load the result)', report[what]), file=sys.stderr)
            failed = True
    if failed:
        print(f'[convert_ckpt] nothing written to {args.dst}', file=sys.stderr)
        return 1

    src_meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    plain = _plain_meta(src_meta if isinstance(src_meta, dict) else {})
    meta = dict(format='mmdet3', converter='fimaq tools/convert_ckpt.py',
                source=osp.abspath(args.src), source_sha256=_sha256(args.src),
                source_format='Swin-Transformer-Object-Detection (mmdet 2.x)',
                source_meta=plain, config=args.config, checked_against_config=bool(args.config),
                dropped_unknown_keys=list(report['unknown']), derived_keys=list(report['filled']))
    if 'CLASSES' in plain:
        meta['dataset_meta'] = dict(classes=tuple(plain['CLASSES']))
    with atomic_path(args.dst) as tmp:  # temp file beside DST, then os.replace
        torch.save({'state_dict': out, 'meta': meta}, tmp)
    n = sum(v.numel() for v in out.values() if v.is_floating_point())
    print(f'[convert_ckpt] {len(out)} tensors ({n / 1e6:.2f} M float values) -> {args.dst}'
          + (f'; checked against {args.config}' if args.config else ''))
    return 0


if __name__ == '__main__':
    from fimaq.engine.cli import run_cli
    run_cli(main)
