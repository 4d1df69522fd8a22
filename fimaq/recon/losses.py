"""Reconstruction losses (ALGORITHM §3.1), one implementation each.

All take the block's quantized output ``out`` and FP output ``target`` (batch first) and
compare flattened per-sample vectors. The Fisher losses also take the Fisher state
(|gradient| rows ``G``, |output change| rows ``D``, ``B⁻¹`` of ``B = D Dᵀ``; see fisher.py).
Normalisation by the first value after a Fisher update lives in :class:`Normalized`.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor


def _delta(out: Tensor, target: Tensor) -> Tensor:
    return (out - target).flatten(1)


def mse_loss(out: Tensor, target: Tensor) -> Tensor:
    """Σ_features Δ², averaged over the batch."""
    return _delta(out, target).pow(2).sum(dim=1).mean()


def mae_loss(out: Tensor, target: Tensor) -> Tensor:
    """Σ_features |Δ|, averaged over the batch."""
    return _delta(out, target).abs().sum(dim=1).mean()


def fisher_diag_loss(out: Tensor, target: Tensor, g_rows: Tensor) -> Tensor:
    """L_diag = mean(Δ² ⊙ mean_j |G_j|): the diagonal of the Fisher from k gradient rows."""
    diag = g_rows.abs().mean(dim=0)
    return (_delta(out, target).pow(2) * diag).mean()


def fisher_lr_loss(out: Tensor, target: Tensor, g_rows: Tensor, b_inv: Tensor) -> Tensor:
    """L_lr = mean_b a_b B⁻¹ a_bᵀ with a_b = |Δ_b| Gᵀ (the low-rank Fisher term)."""
    a = _delta(out, target).abs() @ g_rows.t()            # [batch, k]
    return ((a @ b_inv) * a).sum(dim=1).mean()


def fisher_brecq_loss(out: Tensor, target: Tensor, grad_sq: Tensor) -> Tensor:
    """BRECQ: mean(Δ² ⊙ g_b²) with each sample's own squared output gradient."""
    return (_delta(out, target).pow(2) * grad_sq.flatten(1)).mean()


def rounding_regularizer(quantizers, beta: float) -> Tensor:
    """Σ over AdaRound quantizers of Σ (1 - |2h(α) - 1|^β)."""
    return sum(q.regularizer(beta) for q in quantizers)


def beta_at(step: int, iters: int, warmup: float = 0.2, start: float = 20.0, end: float = 2.0) -> Optional[float]:
    """β annealed linearly from ``start`` to ``end`` after the warm-up; None during warm-up."""
    first = int(warmup * iters)
    if step < first:
        return None
    return start + (end - start) * (step - first) / max(1, iters - first)


class Normalized:
    """Divide a loss by its first value since the last :meth:`reset` (a Fisher update)."""

    def __init__(self) -> None:
        self.ref: Optional[Tensor] = None

    def reset(self) -> None:
        self.ref = None

    def __call__(self, value: Tensor) -> Tensor:
        if self.ref is None:
            self.ref = value.detach().clamp(min=1e-12)
        return value / self.ref


def fisher_dplr_loss(out: Tensor, target: Tensor, g_rows: Tensor, b_inv: Tensor,
                     norm_lr: Normalized, norm_diag: Normalized, p1: float = 1.0,
                     p2: float = 1.0) -> Tensor:
    """FIMA-Q: p1 · L_lr / L_lr⁰ + p2 · L_diag / L_diag⁰ (diagonal plus low rank)."""
    return (p1 * norm_lr(fisher_lr_loss(out, target, g_rows, b_inv))
            + p2 * norm_diag(fisher_diag_loss(out, target, g_rows)))
