"""timm ViT inside a detector (issue 6): the backbone, its surgery, stage B on a ViT block."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn

from conftest import REPO_ROOT
from fimaq.calib import SearchOptions, run_stage_a
from fimaq.calib.reparam import fold_layernorm
from fimaq.models import quantize_detector_modules
from fimaq.models.detector import detector_forward
from fimaq.quant import QuantConv2d, QuantLinear, QuantMatMul, set_quant_mode
from helpers import assert_reconstruction_improves, fake_batch, fixed_roi_outputs, max_rel_diff

VIT_CONFIG = osp.join(REPO_ROOT, 'mmdet_configs', 'tiny', 'mask-rcnn_vit-tiny_fpn_shapes.py')
DEPTH = 8   # the config's ViT depth


def build_vit(seed: int = 0, **backbone) -> nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(VIT_CONFIG)   # custom_imports registers TimmViTPyramid
    cfg.model.backbone.update(backbone)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def timm_attentions(model):
    from timm.layers import Attention
    return [m for m in model.modules() if isinstance(m, Attention)]


@pytest.mark.parametrize('fused', [False, True])
def test_fp_mode_reproduces_detector(fused):
    """Wrapped (explicit QuantMatMul attention, FP mode) vs the unwrapped detector.

    timm's explicit attention path is reproduced bit for bit, through the whole detector.
    Its fused path (F.scaled_dot_product_attention, timm's default) sums in another order,
    which can flip an RPN top-k/NMS choice, so it is compared on fixed FP proposals and
    detections: the backbone and FPN features within 1e-6, the heads' raw outputs within a
    few 1e-6.
    """
    model = build_vit()
    for attn in timm_attentions(model):
        attn.fused_attn = fused
    x, samples = fake_batch()
    with torch.no_grad():
        ref, ref_feats = model._forward(x, samples), model.extract_feat(x)
        fixed, ref_heads = fixed_roi_outputs(model, x, samples)
        wrapped = copy.deepcopy(model)
        qm = quantize_detector_modules(wrapped, w_bits=4, a_bits=4)
        set_quant_mode(wrapped, 'fp')
        out, feats = wrapped._forward(x, samples), wrapped.extract_feat(x)
    assert len(qm.matmuls) == 2 * DEPTH
    if not fused:
        assert max_rel_diff(out, ref) == 0.0
    assert max_rel_diff(feats, ref_feats) <= 1e-6
    assert max_rel_diff(fixed_roi_outputs(wrapped, x, samples, fixed)[1], ref_heads) <= 2e-5


def test_pyramid_levels_are_contiguous_nchw():
    """The levels must be contiguous NCHW: mmcv's RoIAlign reads the raw memory as NCHW, so
    channels-last levels (LayerNorm2d permutes; the FPN convs keep the layout) gave scrambled
    RoI features and a detector whose RoI heads could not learn (mask loss ~ln 2, AP 0)."""
    model = build_vit()
    x, _ = fake_batch()
    with torch.no_grad():
        levels = model.backbone(x)
        feats = model.neck(levels)
        assert all(t.is_contiguous() for t in levels + feats)


@pytest.mark.parametrize('variant', [dict(), dict(qk_norm=True, scale_attn_norm=True),
                                     dict(init_values=1e-2)])
def test_rewritten_attention_equals_timm(variant):
    """Block level, including timm's optional q/k norms, attention-output norm, LayerScale."""
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=64, patch_size=16, embed_dim=64, depth=1, num_heads=2,
                            num_classes=0, **variant).eval()
    blk = vit.blocks[0]
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(0.1 * torch.randn_like(p))   # non-trivial norms and LayerScale
    x = torch.randn(2, 37, 64)
    outs = {}
    with torch.no_grad():
        for fused in (True, False):
            blk.attn.fused_attn = fused
            outs[fused] = blk(x)
        from fimaq.models import vit as vit_adapter
        holder = nn.Module()
        holder.vit = vit
        vit_adapter.prepare(holder, 4, 'uniform', 'backbone')
        assert type(blk.attn).__name__ == 'QuantAttention'
        out = blk(x)
    assert torch.equal(out, outs[False])   # the same arithmetic as timm's explicit path
    assert max_rel_diff(out, outs[True]) <= 1e-6


def test_surgery_covers_every_conv_and_linear():
    model = build_vit()
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    n_deconv = sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    qm = quantize_detector_modules(model, w_bits=4, a_bits=4)
    # ViT: qkv, proj, fc1, fc2 per block (4 x 8) + patch-embedding conv; FPN: 4 lateral +
    # 4 output convs; RPN: conv, cls, reg; box head: 2 shared fcs, cls, reg; mask head:
    # 2 convs + logits.
    assert len(qm.layers) == n_linear + n_conv == 4 * DEPTH + 1 + 8 + 3 + 4 + 3
    assert sum(isinstance(m, QuantLinear) for m in qm.layers.values()) == n_linear
    assert sum(isinstance(m, QuantConv2d) for m in qm.layers.values()) == n_conv
    assert len(qm.matmuls) == 2 * DEPTH
    assert all(isinstance(m, QuantMatMul) for m in qm.matmuls.values())
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    # FP on purpose: the pyramid's three deconvolutions and the mask head's upsampling.
    deconvs = [n for n, why in qm.fp_modules.items() if why == 'ConvTranspose2d']
    assert n_deconv == 4
    assert deconvs == ['backbone.up4.0', 'backbone.up4.3', 'backbone.up2',
                       'roi_head.mask_head.upsample']
    assert qm.layers['backbone.vit.patch_embed.proj'].a_quant.bits == 8
    assert qm.layers['backbone.vit.blocks.0.attn.qkv'].a_quant.bits == 4
    names = [n for n, _ in qm.blocks]
    assert names == (['backbone.vit.patch_embed'] +
                     [f'backbone.vit.blocks.{i}' for i in range(DEPTH)] + ['neck'])
    # LayerNorm → next Linear: norm1 → qkv, norm2 → fc1, no padding owner.
    assert len(qm.layernorm_pairs) == 2 * DEPTH
    blk = model.backbone.vit.blocks[3]
    assert (blk.norm1, blk.attn.qkv, None) in qm.layernorm_pairs
    assert (blk.norm2, blk.mlp.fc1, None) in qm.layernorm_pairs
    assert blk.attn.qkv is qm.layers['backbone.vit.blocks.3.attn.qkv']


def test_unsupported_vit_blocks_are_named():
    from timm.models.vision_transformer import ResPostBlock
    from fimaq.models import UnsupportedModelError
    model = build_vit()
    model.backbone.vit.blocks[2] = ResPostBlock(128, 4)
    with pytest.raises(UnsupportedModelError, match='blocks.2 is a ResPostBlock'):
        quantize_detector_modules(model, w_bits=4, a_bits=4)


def test_layernorm_reparameterization_keeps_fp_function():
    model = build_vit()
    qm = quantize_detector_modules(model, w_bits=4, a_bits=4)
    set_quant_mode(model, 'fp')
    x, _ = fake_batch(n=1, h=160, w=192)
    with torch.no_grad():
        ref = model.extract_feat(x)
        g = torch.Generator().manual_seed(0)
        for ln, lin, pad in qm.layernorm_pairs:
            c = ln.weight.numel()
            fold_layernorm(ln, lin, torch.rand(c, generator=g) + 0.5,
                           torch.randint(0, 16, (c,), generator=g).float(), pad)
        out = model.extract_feat(x)
    assert max_rel_diff(out, ref) <= 1e-5


def minmax_model(bits: int, h: int = 160, w: int = 192):
    model = build_vit()
    batch = fake_batch(n=2, h=h, w=w)
    qm = quantize_detector_modules(model, bits, bits)
    set_quant_mode(model, 'fp')
    run_stage_a(qm.ops(), qm.layernorm_pairs, [batch], detector_forward(model), search=False,
                reparam=False, opts=SearchOptions(), log=lambda s: None)
    return model, qm, batch


def test_two_image_sizes_run_quantized():
    """Position embedding interpolated to each token grid; no scale depends on the size."""
    model, qm, _ = minmax_model(4)
    backbone = model.backbone
    heads = backbone.vit.blocks[0].attn.num_heads
    for op in qm.matmuls.values():
        for q in (op.quant_a, op.quant_b):
            assert q.calibrated and tuple(q.scale.shape) == (1, heads, 1, 1)
    for op in qm.layers.values():
        assert op.a_quant.scale.numel() == 1
    set_quant_mode(model, 'quant')
    for h, w in ((224, 288), (256, 320), (192, 416)):
        x, samples = fake_batch(n=1, h=h, w=w, seed=1)
        with torch.no_grad():
            feats = model.extract_feat(x)
            results = model.predict(x, samples, rescale=False)
        assert [tuple(f.shape[-2:]) for f in feats[:4]] == \
            [(h // 4, w // 4), (h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
        assert all(torch.isfinite(f).all() for f in feats)
        assert len(results) == 1
    # the stored grid is used as is; another grid gets the bicubic interpolation (cached)
    assert backbone.pos_embed_for(backbone.grid_size).shape[1:3] == backbone.grid_size
    with torch.no_grad():
        a = backbone.pos_embed_for((12, 26))
        assert a is backbone.pos_embed_for((12, 26))
        backbone.vit.pos_embed.add_(1.0)          # new weights (e.g. a loaded checkpoint)
        assert torch.allclose(backbone.pos_embed_for((12, 26)), a + 1.0, atol=1e-5)
    assert tuple(a.shape) == (1, 12, 26, backbone.vit.embed_dim)


def test_reconstructing_a_vit_block_lowers_its_loss():
    model, qm, batch = minmax_model(3)
    name, block = qm.blocks[3]
    assert name == 'backbone.vit.blocks.2'
    assert_reconstruction_improves(model, name, block, batch, iters=60)


def test_timm_checkpoint_loads_from_a_local_file(tmp_path):
    """A timm state dict with a class token and a 14x14 grid fits the 16x20-grid backbone."""
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(1)
    src = VisionTransformer(img_size=224, patch_size=16, embed_dim=128, depth=DEPTH,
                            num_heads=4, num_classes=10)
    path = tmp_path / 'vit.pth'
    torch.save({'model': src.state_dict()}, path)
    model = build_vit(checkpoint=str(path))
    vit = model.backbone.vit
    assert torch.equal(vit.blocks[5].mlp.fc2.weight, src.blocks[5].mlp.fc2.weight)
    assert torch.equal(vit.patch_embed.proj.weight, src.patch_embed.proj.weight)
    assert tuple(vit.pos_embed.shape) == (1, 16 * 20, 128)
    # the grid part of the source embedding (class token's entry dropped), resampled
    grid = src.pos_embed[:, 1:].reshape(1, 14, 14, 128).permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(grid, size=(16, 20), mode='bicubic',
                                           align_corners=False)
    assert torch.allclose(vit.pos_embed, want.permute(0, 2, 3, 1).reshape(1, -1, 128))

    missing = str(tmp_path / 'nowhere' / 'vit_small.pth')
    with pytest.raises(FileNotFoundError, match='nowhere/vit_small.pth'):
        build_vit(checkpoint=missing)


def test_fimaq_on_the_vit_detector_saves_and_reloads(tmp_path):
    """Stage A (search + reparameterization) and stage B run unchanged on the ViT detector;
    the quantized model reloads to bit-identical outputs, at a size it was not calibrated on."""
    from fimaq import QuantConfig, quantize
    from fimaq.engine.checkpoint import load_quantized, save_quantized
    model = build_vit()
    qcfg = QuantConfig.from_dict(dict(method='fimaq', eq_n=4, search_round=1,
                                      recon=dict(iters=2, k=1, batch_size=1)))
    quantize(model, [fake_batch(n=1, h=96, w=128)], qcfg, log=lambda s: None)
    path = str(tmp_path / 'quantized.pth')
    save_quantized(model, qcfg, path)
    again = build_vit()
    load_quantized(again, path)
    x, _ = fake_batch(n=1, h=160, w=224, seed=3)
    with torch.no_grad():
        a, b = model.extract_feat(x), again.extract_feat(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
