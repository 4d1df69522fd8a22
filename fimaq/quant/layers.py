"""Quantized ops with two modes: ``fp`` (the original computation) and ``quant``.

They reuse the wrapped module's parameters (same names, so state dicts keep their keys) and
add quantizers as submodules. Nothing here knows about any model architecture.
"""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .quantizer import UniformQuantizer, make_quantizer


class QuantModule(nn.Module):
    """Base of every quantized op: a mode switch and its quantizers."""

    quant_mode: str = 'fp'

    def quantizers(self) -> dict[str, UniformQuantizer]:
        return {n: m for n, m in self.named_children() if isinstance(m, UniformQuantizer)}


class _QuantWeighted(QuantModule):
    """Shared logic of QuantLinear and QuantConv2d (weight + input activation quantizer)."""

    def __init__(self, module: nn.Module, w_bits: int, a_bits: int,
                 w_groups: int = 1, name: str = '') -> None:
        super().__init__()
        self.weight = module.weight
        self.bias = module.bias
        self.w_bits, self.a_bits, self.name = w_bits, a_bits, name
        # Per output channel; `w_groups` > 1 marks fused weights (qkv) whose row groups are
        # searched separately, which per-channel scales already allow.
        self.w_groups = w_groups
        self.w_quant = UniformQuantizer(w_bits, axes=(0,), name=f'{name}.w')
        self.a_quant = UniformQuantizer(a_bits, axes=(), name=f'{name}.a')

    def op(self, x: Tensor, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.quant_mode == 'fp':
            return self.op(x, self.weight)
        return self.op(self.a_quant(x), self.w_quant(self.weight))


class QuantLinear(_QuantWeighted):
    def op(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f'{self.weight.shape[1]}, {self.weight.shape[0]}, W{self.w_bits}A{self.a_bits}'


class QuantConv2d(_QuantWeighted):
    def __init__(self, module: nn.Conv2d, w_bits: int, a_bits: int, name: str = '') -> None:
        super().__init__(module, w_bits, a_bits, name=name)
        if module.padding_mode != 'zeros':
            raise TypeError(f'{name}: Conv2d padding_mode={module.padding_mode!r} is not supported')
        self.stride, self.padding = module.stride, module.padding
        self.dilation, self.groups = module.dilation, module.groups

    def op(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f'{self.weight.shape[1] * self.groups}, {self.weight.shape[0]}, '
                f'k={tuple(self.weight.shape[2:])}, stride={self.stride}, W{self.w_bits}A{self.a_bits}')


class QuantMatMul(QuantModule):
    """``a @ b`` with per-head quantizers on both operands (``[B, heads, N, d]`` layout)."""

    def __init__(self, a_bits: int, a_kind: str = 'uniform', b_kind: str = 'uniform',
                 head_axis: int = 1, name: str = '') -> None:
        super().__init__()
        self.a_bits, self.name = a_bits, name
        self.quant_a = make_quantizer(a_kind, a_bits, axes=(head_axis,), name=f'{name}.A')
        self.quant_b = make_quantizer(b_kind, a_bits, axes=(head_axis,), name=f'{name}.B')

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if self.quant_mode == 'fp':
            return a @ b
        return self.quant_a(a) @ self.quant_b(b)

    def extra_repr(self) -> str:
        return f'A{self.a_bits}'


def set_quant_mode(model: nn.Module, mode: str, only: Optional[set] = None) -> None:
    """Switch every QuantModule of ``model`` (or those in ``only``) to ``fp`` or ``quant``."""
    if mode not in ('fp', 'quant'):
        raise ValueError(f'mode must be "fp" or "quant", got {mode!r}')
    for m in model.modules():
        if isinstance(m, QuantModule) and (only is None or m in only):
            m.quant_mode = mode
