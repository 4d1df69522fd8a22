"""mmdet's SwinTransformer: its attention matmuls, its blocks, its LayerNorm → Linear pairs.

All knowledge of the Swin module layout lives here. The rewritten forwards compute exactly
what mmdet's do (a test compares them) with two changes that only matter once quantized:
the attention products go through :class:`QuantMatMul`, and window padding takes the value
``pad_value`` (zero until a LayerNorm reparameterization moves zero elsewhere).
"""
from __future__ import annotations

import math

import torch
from mmdet.models.backbones.swin import ShiftWindowMSA, SwinTransformer, WindowMSA
from torch import Tensor, nn

from ..quant import QuantMatMul

# Parameters of non-quantized modules that stay FP on purpose: position tables and
# embeddings, added inside attention or to the tokens, not multiplied.
FP_PARAMETERS = frozenset({'relative_position_bias_table', 'absolute_pos_embed'})


class QuantWindowMSA(WindowMSA):
    """WindowMSA whose q·kᵀ and softmax·v are QuantMatMul ops (per-head operands)."""

    def forward(self, x: Tensor, mask=None) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.matmul_qk(q * self.scale, k.transpose(-2, -1))
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(N, N, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.attn_drop(self.softmax(attn))
        x = self.matmul_av(attn, v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class PaddedShiftWindowMSA(ShiftWindowMSA):
    """ShiftWindowMSA that pads windows with ``pad_value`` (per channel) instead of zeros.

    The padding is done here, before mmdet's forward, which then finds nothing to pad; the
    computation is otherwise identical. A LayerNorm reparameterization maps the LayerNorm
    output x to x / r - b, so the padded tokens must become -b to keep the FP function.
    """

    def forward(self, query: Tensor, hw_shape) -> Tensor:
        B, L, C = query.shape
        H, W = hw_shape
        ws = self.window_size
        Hp, Wp = math.ceil(H / ws) * ws, math.ceil(W / ws) * ws
        if (Hp, Wp) == (H, W):
            return super().forward(query, hw_shape)
        padded = self.pad_value.to(query.dtype).expand(B, Hp, Wp, C).clone()
        padded[:, :H, :W] = query.view(B, H, W, C)
        out = super().forward(padded.view(B, Hp * Wp, C), (Hp, Wp))
        return out.view(B, Hp, Wp, C)[:, :H, :W].reshape(B, H * W, C)


def _retype(module: nn.Module, cls: type) -> None:
    """Give ``module`` the subclass ``cls`` in place (same parameters, same state-dict keys)."""
    module.__class__ = cls


def prepare(backbone: SwinTransformer, a_bits: int, softmax_quantizer: str,
            prefix: str) -> list[tuple[str, QuantMatMul]]:
    """Rewrite every window attention of ``backbone``; return its QuantMatMul ops by name."""
    matmuls = []
    for name, m in backbone.named_modules():
        full = f'{prefix}.{name}' if name else prefix
        if isinstance(m, ShiftWindowMSA) and not isinstance(m, PaddedShiftWindowMSA):
            _retype(m, PaddedShiftWindowMSA)
            m.register_buffer('pad_value', torch.zeros(m.w_msa.embed_dims), persistent=True)
        if isinstance(m, WindowMSA) and not isinstance(m, QuantWindowMSA):
            _retype(m, QuantWindowMSA)
            m.matmul_qk = QuantMatMul(a_bits, name=f'{full}.matmul_qk')
            m.matmul_av = QuantMatMul(a_bits, a_kind=softmax_quantizer, name=f'{full}.matmul_av')
            matmuls += [(f'{full}.matmul_qk', m.matmul_qk), (f'{full}.matmul_av', m.matmul_av)]
    return matmuls


def blocks(backbone: SwinTransformer, prefix: str) -> list[tuple[str, nn.Module]]:
    """Reconstruction blocks in forward order: patch embed, each Swin block, each merging."""
    out = [(f'{prefix}.patch_embed', backbone.patch_embed)]
    for i, stage in enumerate(backbone.stages):
        for j, block in enumerate(stage.blocks):
            out.append((f'{prefix}.stages.{i}.blocks.{j}', block))
        if stage.downsample is not None:
            out.append((f'{prefix}.stages.{i}.downsample', stage.downsample))
    return out


def layernorm_pairs(backbone: SwinTransformer):
    """(LayerNorm, next Linear, padding owner or None) for the reparameterization.

    The padding owner is the ShiftWindowMSA that pads the LayerNorm's output with zeros.
    """
    pairs = []
    for stage in backbone.stages:
        for block in stage.blocks:
            pairs.append((block.norm1, block.attn.w_msa.qkv, block.attn))
            pairs.append((block.norm2, block.ffn.layers[0][0], None))
        if stage.downsample is not None and stage.downsample.norm is not None:
            pairs.append((stage.downsample.norm, stage.downsample.reduction, None))
    return pairs


def patch_embed_conv(backbone: SwinTransformer) -> nn.Module:
    return backbone.patch_embed.projection
