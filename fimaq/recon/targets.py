"""The KL of a model's outputs (ALGORITHM §3.2), generic over named outputs with a kind.

Outputs are ``{name: (kind, tensor)}`` with kind 'bernoulli' (sigmoid logits), 'softmax'
(class logits, last dim) or 'gaussian' (regression, unit variance). Each term is the KL
between FP and current outputs at temperature T, averaged per element, weighted and summed.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def bernoulli_kl(logits_q: Tensor, logits_p: Tensor, T: float) -> Tensor:
    """Mean over elements of KL(Bern(σ(p/T)) || Bern(σ(q/T)))."""
    p = torch.sigmoid(logits_p / T)
    return (p * (F.logsigmoid(logits_p / T) - F.logsigmoid(logits_q / T))
            + (1 - p) * (F.logsigmoid(-logits_p / T) - F.logsigmoid(-logits_q / T))).mean()


def softmax_kl(logits_q: Tensor, logits_p: Tensor, T: float) -> Tensor:
    """KL(softmax(p/T) || softmax(q/T)) per row, averaged over elements (rows × classes)."""
    lp = F.log_softmax(logits_p / T, dim=-1)
    lq = F.log_softmax(logits_q / T, dim=-1)
    return (lp.exp() * (lp - lq)).mean()


def gaussian_kl(pred_q: Tensor, pred_p: Tensor) -> Tensor:
    """KL of unit-variance Gaussians: squared error / 2, averaged over elements."""
    return 0.5 * (pred_q - pred_p).pow(2).mean()


def output_kl_terms(current: Mapping[str, tuple[str, Tensor]], fp: Mapping[str, tuple[str, Tensor]],
                    T: float = 20.0) -> dict[str, Tensor]:
    """{name: KL_term(fp || current)} for every output (unweighted)."""
    terms = {}
    for name, (kind, q) in current.items():
        p = fp[name][1].to(q.dtype)
        if kind == 'bernoulli':
            terms[name] = bernoulli_kl(q, p, T)
        elif kind == 'softmax':
            terms[name] = softmax_kl(q, p, T)
        elif kind == 'gaussian':
            terms[name] = gaussian_kl(q, p)
        else:
            raise ValueError(f'unknown output kind {kind!r} for {name}')
    return terms


def output_kl(current: Mapping[str, tuple[str, Tensor]], fp: Mapping[str, tuple[str, Tensor]],
              T: float = 20.0, weights: Optional[Mapping[str, float]] = None) -> Tensor:
    """Σ_terms w_term · KL_term(fp || current); weights by name prefix ('rpn_cls', 'mask' ...)."""
    def weight(name: str) -> float:
        return 1.0 if weights is None else weights.get(name.split('.')[0], 1.0)

    kept = {n: o for n, o in current.items() if weight(n) != 0}
    return sum((weight(n) * t for n, t in output_kl_terms(kept, fp, T).items()), 0.0)


def rpn_target(current, fp, norms, obj_thr: float = 0.7) -> Tensor:
    """APHQ-ViT's detection target: RPN objectness Bernoulli KL (T = 1) + smooth-L1 on the
    deltas of anchors whose FP objectness exceeds ``obj_thr``; each term normalised by its
    first value (``norms``: two Normalized instances)."""
    obj_q, obj_p = current['rpn_cls'][1], fp['rpn_cls'][1].to(current['rpn_cls'][1].dtype)
    reg_q, reg_p = current['rpn_reg'][1], fp['rpn_reg'][1].to(obj_q.dtype)
    kl = bernoulli_kl(obj_q, obj_p, 1.0)
    # Objectness element i owns deltas 4i..4i+3 (see the outputs' layout).
    reg_mask = (torch.sigmoid(obj_p) > obj_thr).repeat_interleave(4, dim=1)
    if not bool(reg_mask.any()):
        reg = reg_q.sum() * 0
    else:
        reg = F.smooth_l1_loss(reg_q[reg_mask], reg_p[reg_mask])
    return norms[0](kl) + norms[1](reg)
