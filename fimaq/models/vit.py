"""timm's VisionTransformer inside :class:`TimmViTPyramid`: attention matmuls, blocks, LN pairs.

All knowledge of the timm ViT module layout lives here (and in ``vit_backbone.py``). timm's
``Attention`` may compute attention with ``F.scaled_dot_product_attention``; the rewritten
forward computes it explicitly, as timm's own non-fused path does (a test compares them),
so that ``q·kᵀ`` and ``softmax·v`` go through :class:`QuantMatMul` with per-head operand
quantizers. qkv, proj, fc1, fc2 and the patch-embedding conv are quantized by the generic
Linear/Conv2d surgery of ``detector.py``; the pyramid's ConvTranspose2d stay FP like the mask
head's. Every activation scale is per tensor or per head, never per token, so one quantized
model serves every image size.
"""
from __future__ import annotations

import functools

from torch import Tensor, nn

from ..quant import QuantMatMul

# Parameters of non-quantized modules that stay FP on purpose: the (interpolated) position
# embedding is added to the tokens; LayerScale (DeiT-III) multiplies a block's branch per
# channel, like a LayerNorm's affine weight.
FP_PARAMETERS = frozenset({'pos_embed', 'gamma'})


def _timm():
    # Imported on use: importing fimaq.models should not pull timm in for Swin detectors.
    from timm.layers import Attention, maybe_add_mask, resolve_self_attn_mask
    from timm.models.vision_transformer import Block
    return Attention, Block, maybe_add_mask, resolve_self_attn_mask


@functools.lru_cache(maxsize=None)
def quant_attention_class():
    """The QuantAttention class, built on first use so that timm loads only for ViTs."""
    Attention, _, maybe_add_mask, resolve_self_attn_mask = _timm()

    class QuantAttention(Attention):
        """timm Attention whose q·kᵀ and softmax·v are QuantMatMul ops (per-head operands)."""

        def forward(self, x: Tensor, attn_mask=None, is_causal: bool = False) -> Tensor:
            B, N, _ = x.shape
            gate = self.gate(x).sigmoid() if getattr(self, 'gate', None) is not None else None
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            q, k = self.q_norm(q), self.k_norm(k)
            attn = self.matmul_qk(q * self.scale, k.transpose(-2, -1))
            attn = maybe_add_mask(attn, resolve_self_attn_mask(N, attn, attn_mask, is_causal))
            attn = self.attn_drop(attn.softmax(dim=-1))
            x = self.matmul_av(attn, v).transpose(1, 2).reshape(B, N, -1)
            x = self.norm(x)
            if gate is not None:
                x = x * gate
            return self.proj_drop(self.proj(x))

    QuantAttention.__qualname__ = 'QuantAttention'
    return QuantAttention


def __getattr__(name: str):
    # ``fimaq.models.vit.QuantAttention`` resolves (e.g. when a pickled model is loaded).
    if name == 'QuantAttention':
        return quant_attention_class()
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _unsupported(msg: str) -> Exception:
    from .detector import UnsupportedModelError
    return UnsupportedModelError(msg)


def _check_blocks(backbone: nn.Module) -> None:
    Attention, Block, _, _ = _timm()
    for i, blk in enumerate(backbone.vit.blocks):
        if type(blk) is not Block:
            raise _unsupported(f'backbone.vit.blocks.{i} is a {type(blk).__name__}; fimaq '
                               "surgery supports timm's pre-norm Block")
        if not isinstance(blk.attn, Attention):
            raise _unsupported(f'backbone.vit.blocks.{i}.attn is a {type(blk.attn).__name__}; '
                               "fimaq surgery supports timm's Attention")


def prepare(backbone: nn.Module, a_bits: int, softmax_quantizer: str,
            prefix: str) -> list[tuple[str, QuantMatMul]]:
    """Rewrite every attention of the ViT; return its QuantMatMul ops by name."""
    _check_blocks(backbone)
    Attention = _timm()[0]
    QuantAttention = quant_attention_class()
    matmuls = []
    for name, m in backbone.named_modules():
        if isinstance(m, Attention) and not isinstance(m, QuantAttention):
            full = f'{prefix}.{name}'
            m.__class__ = QuantAttention   # same parameters, same state-dict keys
            m.matmul_qk = QuantMatMul(a_bits, name=f'{full}.matmul_qk')
            m.matmul_av = QuantMatMul(a_bits, a_kind=softmax_quantizer, name=f'{full}.matmul_av')
            matmuls += [(f'{full}.matmul_qk', m.matmul_qk), (f'{full}.matmul_av', m.matmul_av)]
    return matmuls


def blocks(backbone: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """Reconstruction blocks in forward order: the patch embedding, then every ViT block.

    The pyramid after the last block holds no quantized op (ConvTranspose2d, LayerNorm2d,
    max-pool stay FP); the FPN that follows is the detector's ``neck`` block.
    """
    vit = backbone.vit
    return [(f'{prefix}.vit.patch_embed', vit.patch_embed)] + \
        [(f'{prefix}.vit.blocks.{i}', blk) for i, blk in enumerate(vit.blocks)]


def layernorm_pairs(backbone: nn.Module):
    """(LayerNorm, next Linear, None) for the reparameterization: norm1 → qkv, norm2 → fc1.

    A ViT pads nothing after a LayerNorm, so there is no padding owner. A pair is only
    listed when the Linear is the LayerNorm's sole consumer (no gated attention) and the
    norm is an affine LayerNorm.
    """
    pairs = []
    for blk in backbone.vit.blocks:
        if isinstance(blk.norm1, nn.LayerNorm) and getattr(blk.attn, 'gate', None) is None:
            pairs.append((blk.norm1, blk.attn.qkv, None))
        if isinstance(blk.norm2, nn.LayerNorm) and hasattr(blk.mlp, 'fc1'):
            pairs.append((blk.norm2, blk.mlp.fc1, None))
    return [p for p in pairs if p[0].weight is not None and p[0].bias is not None]


def patch_embed_conv(backbone: nn.Module) -> nn.Module:
    return backbone.vit.patch_embed.proj
