"""Model surgery for an mmdet two-stage detector: which ops are quantized, which stay FP.

Protocol of the published COCO tables (ALGORITHM §1): every Conv2d and Linear of the
detector is quantized at W/A bits (backbone, FPN, RPN head, RoI box and mask heads, their
last layers included) except the mask head's upsampling ConvTranspose2d, which stays FP;
the patch-embedding input is quantized at 8 bits. ``backbone_only`` restricts it to the
backbone. LayerNorm, softmax, GELU, residual adds, RoIAlign and NMS stay in floating point.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..quant import QuantConv2d, QuantLinear, QuantMatMul, QuantModule
from . import swin, vit

# Module types that may own parameters and stay FP on purpose (documented above).
FP_PARAM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm,
                  nn.ConvTranspose2d)
PATCH_EMBED_INPUT_BITS = 8


class UnsupportedModelError(TypeError):
    """A backbone or layer type the surgery does not know; the message names it."""


@dataclass
class QuantizedModel:
    """What surgery produced: the ops, the blocks for stage B, the reparameterization pairs."""

    layers: dict[str, QuantModule] = field(default_factory=dict)   # QuantLinear/QuantConv2d
    matmuls: dict[str, QuantMatMul] = field(default_factory=dict)
    blocks: list[tuple[str, nn.Module]] = field(default_factory=list)
    layernorm_pairs: list = field(default_factory=list)
    fp_modules: dict[str, str] = field(default_factory=dict)        # name -> why it stays FP
    stats: dict[str, dict] = field(default_factory=dict)            # stage A results per op
    recon_stats: dict[str, dict] = field(default_factory=dict)      # stage B results per block

    def ops(self) -> dict[str, QuantModule]:
        return {**self.layers, **self.matmuls}


_BACKBONES = {'SwinTransformer': swin, 'TimmViTPyramid': vit}


def _backbone_adapter(backbone: nn.Module):
    adapter = _BACKBONES.get(type(backbone).__name__)
    if adapter is None:
        raise UnsupportedModelError(
            f'backbone type {type(backbone).__name__} is not supported by fimaq surgery '
            f'(supported: {", ".join(sorted(_BACKBONES))})')
    return adapter


def _set_child(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition('.')
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def quantize_detector_modules(model: nn.Module, w_bits: int, a_bits: int,
                              backbone_only: bool = False,
                              softmax_quantizer: str = 'uniform') -> QuantizedModel:
    """Replace the detector's Conv2d/Linear by quantized ops (in place) and describe them."""
    if not hasattr(model, 'backbone'):
        raise UnsupportedModelError(f'model type {type(model).__name__} has no backbone; '
                                    'fimaq quantizes mmdet detectors')
    adapter = _backbone_adapter(model.backbone)
    qm = QuantizedModel()
    qm.matmuls = dict(adapter.prepare(model.backbone, a_bits, softmax_quantizer, 'backbone'))
    patch_conv = adapter.patch_embed_conv(model.backbone)
    scope = 'backbone.' if backbone_only else ''

    for name, m in list(model.named_modules()):
        if not name or isinstance(m, QuantModule):
            continue
        in_scope = name.startswith(scope)
        if isinstance(m, (nn.Linear, nn.Conv2d)):  # ConvTranspose2d is not a Conv2d
            if not in_scope:
                qm.fp_modules[name] = 'outside backbone (backbone_only)'
                continue
            if isinstance(m, nn.Linear):
                new = QuantLinear(m, w_bits, a_bits, name=name)
            else:
                bits_in = PATCH_EMBED_INPUT_BITS if m is patch_conv else a_bits
                new = QuantConv2d(m, w_bits, bits_in, name=name)
            _set_child(model, name, new)
            qm.layers[name] = new
        elif isinstance(m, FP_PARAM_TYPES):
            if any(True for _ in m.parameters(recurse=False)):
                qm.fp_modules[name] = type(m).__name__
        elif any(True for _ in m.parameters(recurse=False)):
            own = {n for n, _ in m.named_parameters(recurse=False)}
            # Parameters the backbone adapter keeps FP (position tables/embeddings, LayerScale).
            if own <= adapter.FP_PARAMETERS:
                continue
            raise UnsupportedModelError(
                f'layer {name} of type {type(m).__name__} has parameters {sorted(own)} that '
                'fimaq cannot quantize; supported: Linear, Conv2d (and FP norms/ConvTranspose2d)')
    qm.blocks = adapter.blocks(model.backbone, 'backbone')
    if hasattr(model, 'neck') and model.neck is not None and not backbone_only:
        qm.blocks.append(('neck', model.neck))
    qm.layernorm_pairs = adapter.layernorm_pairs(model.backbone)
    return qm


def detector_forward(model: nn.Module):
    """The forward that calibration runs: the detector's own test-time predict path."""

    def forward(batch):
        inputs, samples = batch
        return model.predict(inputs, samples, rescale=False)

    return forward


def detector_features(model: nn.Module):
    """The forward that reaches every reconstruction block: backbone and neck."""

    def forward(batch):
        return model.extract_feat(batch[0])

    return forward
