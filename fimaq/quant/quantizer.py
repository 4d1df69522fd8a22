"""Fake quantizers: uniform asymmetric (per tensor / channel / head) and log2.

``q(x) = (clamp(round(x / s) + z, 0, 2^b - 1) - z) * s``. Rounding is straight-through so
scales can be trained later (stage B). A quantizer holds its scale and zero point as tensors
shaped to broadcast against its input, e.g. ``[out, 1]`` for a Linear weight per output
channel, ``[1, heads, 1, 1]`` for an attention operand per head, ``[1]`` per tensor.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def round_ste(x: Tensor) -> Tensor:
    """Round to nearest with the identity gradient (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def fake_quant(x: Tensor, scale: Tensor, zero_point: Tensor, bits: int) -> Tensor:
    """Uniform asymmetric fake quantization; gradients flow to ``x`` and ``scale``."""
    qmax = 2 ** bits - 1
    q = torch.clamp(round_ste(x / scale) + zero_point, 0, qmax)
    return (q - zero_point) * scale


def broadcast_shape(ndim: int, axes: Sequence[int], sizes: Sequence[int]) -> list[int]:
    """Shape with ``sizes`` on ``axes`` and 1 elsewhere (axes may be negative)."""
    shape = [1] * ndim
    for a, s in zip(axes, sizes):
        shape[a] = s
    return shape


class UniformQuantizer(nn.Module):
    """Asymmetric uniform fake quantizer.

    ``axes`` are the dimensions that get their own (scale, zero point): ``()`` per tensor,
    ``(0,)`` per output channel of a weight, ``(1,)`` per head of a ``[B, H, N, d]`` operand.
    Until :meth:`set_params` (or :meth:`init_minmax`) is called the quantizer is the identity.
    """

    def __init__(self, bits: int, axes: Sequence[int] = (), name: str = '') -> None:
        super().__init__()
        if not 2 <= bits <= 8:
            raise ValueError(f'{name or "quantizer"}: bits must be in 2..8, got {bits}')
        self.bits = bits
        self.axes = tuple(axes)
        self.name = name
        self.register_buffer('scale', torch.ones(1))
        self.register_buffer('zero_point', torch.zeros(1))
        self.calibrated = False
        self.enabled = True
        # QDrop (stage B only, set by the reconstruction loop): output the quantized value
        # with probability drop_prob, else the FP value; 0 (the default) means always quantized.
        self.drop_prob = 0.0

    @property
    def qmax(self) -> int:
        return 2 ** self.bits - 1

    def reduce_dims(self, x: Tensor) -> list[int]:
        keep = {a % x.dim() for a in self.axes}
        return [d for d in range(x.dim()) if d not in keep]

    def params_from_range(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """(scale, zero point) covering ``[lo, hi]``; the range always contains 0."""
        lo = torch.clamp(lo, max=0.0)
        hi = torch.clamp(hi, min=0.0)
        scale = torch.clamp((hi - lo) / self.qmax, min=1e-8)
        zero_point = torch.clamp(torch.round(-lo / scale), 0, self.qmax)
        return scale, zero_point

    @torch.no_grad()
    def init_minmax(self, x: Tensor) -> None:
        """Scales from the min/max of ``x`` over the non-kept dims (the `minmax` method)."""
        dims = self.reduce_dims(x)
        lo = x.amin(dim=dims, keepdim=True) if dims else x
        hi = x.amax(dim=dims, keepdim=True) if dims else x
        self.set_params(*self.params_from_range(lo, hi))

    @torch.no_grad()
    def set_params(self, scale: Tensor, zero_point: Tensor) -> None:
        self.scale = scale.detach().clone().float()
        self.zero_point = zero_point.detach().clone().float()
        self.calibrated = True

    def forward(self, x: Tensor) -> Tensor:
        if not (self.enabled and self.calibrated):
            return x
        return self._qdrop(x, fake_quant(x, self.scale.to(x.dtype), self.zero_point.to(x.dtype), self.bits))

    def _qdrop(self, x: Tensor, q: Tensor) -> Tensor:
        if self.drop_prob <= 0:
            return q
        return torch.where(torch.rand_like(x) < self.drop_prob, q, x)

    def extra_repr(self) -> str:
        return f'bits={self.bits}, axes={self.axes}, calibrated={self.calibrated}'

    # Scales are sized at calibration time; accept whatever shape a saved state holds.
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in ('scale', 'zero_point'):
            if prefix + key in state_dict:
                setattr(self, key, torch.empty_like(state_dict[prefix + key]))
                self.calibrated = True
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Log2Quantizer(UniformQuantizer):
    """Log2 quantizer for non-negative inputs such as post-softmax probabilities.

    ``q(x) = s * 2^-k`` with ``k = clamp(round(-log2(x / s)), 0, 2^b - 1)``; values below
    ``s * 2^-(2^b - 1)`` (and exact zeros) become 0. ``zero_point`` is unused (kept at 0).
    """

    @torch.no_grad()
    def init_minmax(self, x: Tensor) -> None:
        dims = self.reduce_dims(x)
        hi = x.amax(dim=dims, keepdim=True) if dims else x
        self.set_params(torch.clamp(hi, min=1e-8), torch.zeros_like(hi))

    def params_from_range(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        return torch.clamp(hi, min=1e-8), torch.zeros_like(hi)

    def forward(self, x: Tensor) -> Tensor:
        if not (self.enabled and self.calibrated):
            return x
        s = self.scale.to(x.dtype)
        k = round_ste(-torch.log2(torch.clamp(x / s, min=1e-20)))
        underflow = k > self.qmax
        q = s * torch.pow(2.0, -torch.clamp(k, 0, self.qmax))
        return self._qdrop(x, torch.where(underflow, torch.zeros_like(q), q))


def make_quantizer(kind: str, bits: int, axes: Sequence[int] = (), name: str = '') -> UniformQuantizer:
    if kind == 'uniform':
        return UniformQuantizer(bits, axes, name)
    if kind == 'log2':
        return Log2Quantizer(bits, axes, name)
    raise ValueError(f'unknown quantizer kind {kind!r}; use "uniform" or "log2"')

