"""Model surgery: FP mode reproduces the detector; coverage of every Conv2d/Linear is counted."""
import copy

import pytest
import torch
from torch import nn

from fimaq.models import UnsupportedModelError, quantize_detector_modules
from fimaq.quant import QuantConv2d, QuantLinear, QuantMatMul, set_quant_mode
from helpers import build_tiny, fake_batch, max_rel_diff


@pytest.mark.parametrize('kind', ['mask', 'cascade'])
def test_fp_mode_reproduces_detector(kind):
    model = build_tiny(kind)
    x, samples = fake_batch()
    with torch.no_grad():
        ref = model._forward(x, samples)
        wrapped = copy.deepcopy(model)
        quantize_detector_modules(wrapped, w_bits=4, a_bits=4)
        set_quant_mode(wrapped, 'fp')
        out = wrapped._forward(x, samples)
    assert max_rel_diff(out, ref) <= 1e-6


@pytest.mark.parametrize('kind', ['mask', 'cascade'])
def test_surgery_covers_every_conv_and_linear(kind):
    model = build_tiny(kind)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    n_deconv = sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    n_attn = sum(type(m).__name__ == 'WindowMSA' for m in model.modules())
    qm = quantize_detector_modules(model, w_bits=4, a_bits=4)
    n_mask_heads = 3 if kind == 'cascade' else 1  # a mask head per cascade stage
    assert n_deconv == n_mask_heads  # each mask head's upsampling
    assert len(qm.layers) == n_linear + n_conv
    assert sum(isinstance(m, QuantLinear) for m in qm.layers.values()) == n_linear
    assert sum(isinstance(m, QuantConv2d) for m in qm.layers.values()) == n_conv
    assert len(qm.matmuls) == 2 * n_attn
    assert all(isinstance(m, QuantMatMul) for m in qm.matmuls.values())
    # Nothing unquantized is left except the documented FP modules.
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    deconvs = [n for n, why in qm.fp_modules.items() if why == 'ConvTranspose2d']
    assert deconvs == (['roi_head.mask_head.upsample'] if kind == 'mask' else
                       [f'roi_head.mask_head.{i}.upsample' for i in range(3)])
    # Patch-embedding input is 8-bit; everything else at a_bits.
    assert qm.layers['backbone.patch_embed.projection'].a_quant.bits == 8
    assert qm.layers['rpn_head.rpn_cls'].a_quant.bits == 4
    # Reconstruction blocks: patch embed, 8 Swin blocks, 3 mergings, the FPN.
    names = [n for n, _ in qm.blocks]
    assert names[0] == 'backbone.patch_embed' and names[-1] == 'neck' and len(names) == 13


def test_backbone_only_keeps_heads_fp():
    model = build_tiny('mask')
    qm = quantize_detector_modules(model, w_bits=4, a_bits=4, backbone_only=True)
    assert all(n.startswith('backbone.') for n in qm.layers)
    assert 'roi_head.bbox_head.fc_cls' in qm.fp_modules
    assert type(model.roi_head.bbox_head.fc_cls) is nn.Linear


def test_unsupported_types_are_named():
    model = build_tiny('mask')
    model.backbone.stages[0].blocks[0].extra = nn.Embedding(3, 4)
    with pytest.raises(UnsupportedModelError, match='Embedding'):
        quantize_detector_modules(model, w_bits=4, a_bits=4)
    model = build_tiny('mask')
    model.backbone = nn.Sequential(nn.Conv2d(3, 3, 1))
    with pytest.raises(UnsupportedModelError, match='backbone type Sequential'):
        quantize_detector_modules(model, w_bits=4, a_bits=4)
