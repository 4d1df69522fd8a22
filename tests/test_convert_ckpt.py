"""tools/convert_ckpt.py: Swin-Transformer-Object-Detection checkpoints -> mmdet 3.3.

Tiny Swin detectors stand in for the released ones: their state dict is mapped to the
release's layout (``to_original``), converted back and loaded strictly into a fresh model,
which must then give bit-identical outputs. The patch-merging channel order is checked
against an independent re-implementation of the release's PatchMerging, so the round trip
cannot pass with a permutation that is wrong both ways.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from convert_ckpt import (UNFOLD_TO_RELEASE, convert, main, release_relative_position_index,
                          to_original)
from helpers import TINY, fake_batch, flat_outputs


def _tiny_cfg(kind: str) -> Config:
    if kind != 'cascade_4conv1fc':
        return Config.fromfile(TINY[kind])
    # The release's cascade box head: 4 shared convs + SyncBN, 1 fc, class-specific GIoU.
    cfg = Config.fromfile(TINY['cascade'])
    for head in cfg.model.roi_head.bbox_head:
        head.update(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1,
                    conv_out_channels=64, reg_class_agnostic=False, reg_decoded_bbox=True,
                    norm_cfg=dict(type='SyncBN', requires_grad=True))
        head.loss_bbox = dict(type='GIoULoss', loss_weight=10.0)  # replace, not merge
    return cfg


def _build(kind: str, seed: int, randomize: bool = False):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(_tiny_cfg(kind).model))
    model.init_weights()
    if randomize:  # no parameter at its init value (LayerNorm 1/0 would hide a permutation)
        g = torch.Generator().manual_seed(seed + 100)
        state = {}
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                noise = torch.randn(v.shape, generator=g) * 0.1
                v = (v.abs() + 0.5 + noise.abs()) if k.endswith('running_var') else v + noise
            state[k] = v
        model.load_state_dict(state, strict=True)
    return model.eval()


def _outputs(model):
    x, samples = fake_batch(n=1, h=224, w=288)
    with torch.no_grad():
        return flat_outputs(model._forward(x, samples))


@pytest.mark.parametrize('kind', ['mask', 'cascade', 'cascade_4conv1fc'])
def test_round_trip_loads_strictly_and_reproduces_outputs(kind):
    model = _build(kind, seed=0, randomize=True)
    release = to_original(model.state_dict())
    # The release's names (Swin-Transformer-Object-Detection's SwinTransformer).
    for key in ('backbone.patch_embed.proj.weight', 'backbone.patch_embed.norm.weight',
                'backbone.layers.0.blocks.0.attn.qkv.weight',
                'backbone.layers.0.blocks.1.attn.relative_position_bias_table',
                'backbone.layers.0.blocks.0.mlp.fc1.weight', 'backbone.layers.3.blocks.1.mlp.fc2.bias',
                'backbone.layers.0.blocks.0.norm1.weight', 'backbone.layers.2.blocks.0.norm2.bias',
                'backbone.layers.2.downsample.reduction.weight', 'backbone.layers.0.downsample.norm.bias',
                'backbone.norm0.weight', 'backbone.norm3.bias', 'rpn_head.rpn_conv.weight',
                'neck.lateral_convs.0.conv.weight'):
        assert key in release, key
    assert not any(k.startswith('backbone.stages.') for k in release)
    assert len(release) == len(model.state_dict())

    fresh = _build(kind, seed=1)
    converted, report = convert(release, fresh.state_dict())
    assert report == dict(unknown=[], filled=[], missing=[], wrong_shape=[])
    fresh.load_state_dict(converted, strict=True)
    for a, b in zip(_outputs(fresh), _outputs(model), strict=True):
        assert torch.equal(a, b)


def _release_patch_merging(x, H, W, norm, reduction):
    """The release's PatchMerging.forward, written from its definition."""
    B, L, C = x.shape
    x = x.view(B, H, W, C)
    if H % 2 or W % 2:
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    x0, x1 = x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :]
    x2, x3 = x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]
    x = torch.cat([x0, x1, x2, x3], -1).view(B, -1, 4 * C)
    return reduction(norm(x))


@pytest.mark.parametrize('hw', [(6, 8), (5, 7)])
def test_patch_merging_order_matches_release(hw):
    from mmdet.models.layers import PatchMerging
    torch.manual_seed(0)
    C = 8
    merge = PatchMerging(in_channels=C, out_channels=2 * C, norm_cfg=dict(type='LN')).eval()
    with torch.no_grad():
        merge.norm.weight.normal_()
        merge.norm.bias.normal_()
    state = {f'backbone.stages.0.downsample.{k}': v for k, v in merge.state_dict().items()}
    release = to_original(state)
    norm, reduction = torch.nn.LayerNorm(4 * C), torch.nn.Linear(4 * C, 2 * C, bias=False)
    norm.load_state_dict({'weight': release['backbone.layers.0.downsample.norm.weight'],
                          'bias': release['backbone.layers.0.downsample.norm.bias']})
    reduction.weight.data.copy_(release['backbone.layers.0.downsample.reduction.weight'])
    H, W = hw
    x = torch.randn(2, H * W, C)
    with torch.no_grad():
        ours, out_hw = merge(x, (H, W))
        ref = _release_patch_merging(x, H, W, norm, reduction)
    assert out_hw == ((H + 1) // 2, (W + 1) // 2)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # ... and the permutation is not the identity (the test would be vacuous otherwise).
    assert UNFOLD_TO_RELEASE != (0, 1, 2, 3)
    assert not torch.equal(release['backbone.layers.0.downsample.norm.weight'], merge.norm.weight)


def test_relative_position_index_matches_release_and_is_derived_when_absent():
    model = _build('mask', seed=0, randomize=True)
    buf = model.backbone.stages[0].blocks[0].attn.w_msa.relative_position_index
    assert torch.equal(buf, release_relative_position_index(7))
    release = {k: v for k, v in to_original(model.state_dict()).items()
               if not k.endswith('relative_position_index')}
    converted, report = convert(release, model.state_dict())
    assert len(report['filled']) == 8 and not report['unknown'] and not report['missing']
    fresh = _build('mask', seed=1)
    fresh.load_state_dict(converted, strict=True)
    for a, b in zip(_outputs(fresh), _outputs(model), strict=True):
        assert torch.equal(a, b)


def test_unknown_keys_are_reported_never_dropped_silently(tmp_path, capsys):
    model = _build('mask', seed=0)
    release = to_original(model.state_dict())
    release['backbone.layers.0.blocks.0.attn.attn_mask'] = torch.zeros(4, 49, 49)
    release['backbone.head.weight'] = torch.zeros(10, 256)   # a classifier head
    release['ema_backbone.norm0.weight'] = torch.zeros(32)

    _, report = convert(release)  # no model: backbone checked by name, other prefixes listed
    assert sorted(report['unknown']) == sorted(['backbone.layers.0.blocks.0.attn.attn_mask',
                                                'backbone.head.weight', 'ema_backbone.norm0.weight'])
    release['roi_head.bbox_head.fc_extra.weight'] = torch.zeros(3, 3)
    _, report = convert(release, model.state_dict())  # with a model: every key is checked
    assert 'roi_head.bbox_head.fc_extra.weight' in report['unknown'] and len(report['unknown']) == 4

    src, dst = tmp_path / 'release.pth', tmp_path / 'out' / 'converted.pth'
    torch.save({'state_dict': release, 'meta': {'mmdet_version': '2.11.0', 'epoch': 36,
                                                'CLASSES': ('a', 'b')}}, src)
    argv = [str(src), str(dst), '--config', TINY['mask']]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert 'unknown keys (4)' in err and 'roi_head.bbox_head.fc_extra.weight' in err
    assert 'backbone.head.weight' in err and not dst.exists()

    assert main(argv + ['--allow-unknown']) == 0
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    meta = ckpt['meta']
    assert len(meta['dropped_unknown_keys']) == 4 and meta['source_meta']['epoch'] == 36
    assert meta['dataset_meta']['classes'] == ('a', 'b') and len(meta['source_sha256']) == 64
    fresh = _build('mask', seed=1)
    fresh.load_state_dict(ckpt['state_dict'], strict=True)
    assert [p.name for p in dst.parent.iterdir()] == ['converted.pth']  # no temp file left


def test_clean_checkpoint_converts_without_config_and_loads(tmp_path):
    model = _build('cascade', seed=0, randomize=True)
    src, dst = tmp_path / 'release.pth', tmp_path / 'converted.pth'
    torch.save({'state_dict': to_original(model.state_dict())}, src)
    assert main([str(src), str(dst)]) == 0
    fresh = _build('cascade', seed=1)
    fresh.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    for a, b in zip(_outputs(fresh), _outputs(model), strict=True):
        assert torch.equal(a, b)
