"""AdaRound: learned up/down rounding of weights (Nagel et al., 2020), for stage B.

``W_q = s * (clamp(floor(W / s) + h(α) + z, 0, 2^b - 1) - z)`` with the rectified sigmoid
``h(α) = clamp(sigmoid(α) (ζ - γ) + γ, 0, 1)``, ζ = 1.1, γ = -0.1. α starts where h(α)
equals the fractional part of W / s, so step 0 reproduces round-to-nearest up to the
soft rounding; :meth:`harden` makes h a step function (h = 1[α >= 0]).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .quantizer import UniformQuantizer

ZETA, GAMMA = 1.1, -0.1


class AdaRoundQuantizer(nn.Module):
    """Weight quantizer with trainable rounding; scales and zero points stay fixed."""

    def __init__(self, base: UniformQuantizer, weight: Tensor) -> None:
        super().__init__()
        self.bits, self.qmax, self.axes, self.name = base.bits, base.qmax, base.axes, base.name
        self.register_buffer('scale', base.scale.detach().clone())
        self.register_buffer('zero_point', base.zero_point.detach().clone())
        w = weight.detach() / self.scale
        self.register_buffer('w_floor', torch.floor(w))
        rest = (w - self.w_floor).clamp(1e-4, 1 - 1e-4)
        # h(α) = rest  <=>  sigmoid(α) = (rest - γ) / (ζ - γ)
        p = (rest - GAMMA) / (ZETA - GAMMA)
        self.alpha = nn.Parameter(torch.log(p / (1 - p)))
        self.hard = False

    def h(self) -> Tensor:
        if self.hard:
            return (self.alpha >= 0).to(self.alpha.dtype)
        return torch.clamp(torch.sigmoid(self.alpha) * (ZETA - GAMMA) + GAMMA, 0, 1)

    def forward(self, weight: Tensor) -> Tensor:  # the weight itself is folded in w_floor
        q = torch.clamp(self.w_floor + self.h() + self.zero_point, 0, self.qmax)
        return (q - self.zero_point) * self.scale

    def regularizer(self, beta: float) -> Tensor:
        """Σ (1 - |2h(α) - 1|^β): zero once every h is exactly 0 or 1."""
        return (1 - (2 * self.h() - 1).abs().pow(beta)).sum()

    def harden(self) -> None:
        self.hard = True

    def to_uniform(self) -> UniformQuantizer:
        """The plain quantizer with the same grid (quantized weights round to themselves)."""
        q = UniformQuantizer(self.bits, self.axes, self.name)
        q.set_params(self.scale, self.zero_point)
        return q
