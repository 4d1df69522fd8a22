"""Stage A scale search: percentile candidate grids, picked per group by MSE, batched.

Every search has the same shape: build ``eq_n`` candidate (scale, zero point) pairs per
group (output channel, head or tensor) from percentiles of the tensor, evaluate an error for
every candidate at once (in chunks under a memory cap), keep the best per group. The layer
code (QuantLinear, QuantConv2d, QuantMatMul) only supplies the error of a candidate batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from ..quant.quantizer import Log2Quantizer, UniformQuantizer


@dataclass
class SearchOptions:
    eq_n: int = 128                 # candidates per search
    search_round: int = 3           # alternating weight/activation rounds
    w_pct: float = 0.9              # weights: upper end in [w_pct, 1], lower in [1 - w_pct, 0]
    a_pct: float = 0.9              # linear/conv inputs, likewise
    mm_pct: tuple = (0.99, 0.99999)  # matmul operands: upper end in this range (lower mirrored)
    mem_cap_mb: int = 1024          # bytes one candidate chunk may hold
    max_quantile_elems: int = 1 << 20
    input_mse_elems: int = 1 << 18   # elements used for the input-MSE starting point
    seed: int = 0


def group_quantiles(x: Tensor, axes: Sequence[int], pcts: Tensor, max_elems: int,
                    seed: int = 0) -> Tensor:
    """Quantiles of ``x`` per group (the ``axes`` kept), shaped ``[len(pcts), *scale_shape]``.

    Large groups are subsampled (seeded) to at most ``max_elems`` values in all.
    """
    nd = x.dim()
    keep = sorted(a % nd for a in axes)
    shape = [x.shape[a] if a in keep else 1 for a in range(nd)]
    perm = keep + [d for d in range(nd) if d not in keep]
    flat = x.permute(perm).reshape(int(torch.tensor([x.shape[a] for a in keep]).prod()) if keep else 1, -1)
    n = flat.shape[1]
    per_group = max(1, max_elems // flat.shape[0])
    if n > per_group:
        g = torch.Generator(device='cpu').manual_seed(seed)
        idx = torch.randperm(n, generator=g)[:per_group].to(flat.device)
        flat = flat[:, idx]
        n = per_group
    srt = flat.float().sort(dim=1).values
    pos = torch.round(pcts.to(srt.device) * (n - 1)).long().clamp(0, n - 1)
    return srt[:, pos].t().reshape(len(pcts), *shape)


def range_candidates(q: UniformQuantizer, x: Tensor, hi_range: tuple[float, float], eq_n: int,
                     max_elems: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(scales, zero points) of ``eq_n`` candidates from paired upper/lower percentiles."""
    hi_p = torch.linspace(hi_range[0], hi_range[1], eq_n)
    lo_p = 1.0 - hi_p
    qs = group_quantiles(x, q.axes, torch.cat([hi_p, lo_p]), max_elems, seed)
    hi, lo = qs[:eq_n], qs[eq_n:]
    return q.params_from_range(lo, hi)


def end_candidates(q: UniformQuantizer, x: Tensor, hi_range: tuple[float, float], eq_n: int,
                   which: str, max_elems: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Candidates that move one end of the current range (``which`` = 'upper' or 'lower')."""
    hi_p = torch.linspace(hi_range[0], hi_range[1], eq_n)
    pcts = hi_p if which == 'upper' else 1.0 - hi_p
    ends = group_quantiles(x, q.axes, pcts, max_elems, seed)
    cur_lo = -q.zero_point * q.scale
    cur_hi = (q.qmax - q.zero_point) * q.scale
    if isinstance(q, Log2Quantizer):
        return q.params_from_range(cur_lo.expand_as(ends), ends if which == 'upper' else cur_hi.expand_as(ends))
    if which == 'upper':
        return q.params_from_range(cur_lo.expand_as(ends), ends)
    return q.params_from_range(ends, cur_hi.expand_as(ends))


def quantize_with(q: UniformQuantizer, x: Tensor, scale: Tensor, zero_point: Tensor) -> Tensor:
    """``x`` fake-quantized with candidate parameters (a leading candidate dim broadcasts).

    The same function as the quantizer's forward, without autograd and in place on one
    buffer: the search spends most of its time here.
    """
    t = x / scale
    if isinstance(q, Log2Quantizer):
        t.clamp_(min=1e-20).log2_().neg_().round_()
        under = t > q.qmax
        t.clamp_(0, q.qmax).neg_().exp2_().mul_(scale)
        return t.masked_fill_(under, 0.0)
    return t.round_().add_(zero_point).clamp_(0, q.qmax).sub_(zero_point).mul_(scale)


def subsample(x: Tensor, max_elems: int, seed: int) -> Tensor:
    """At most ``max_elems`` elements of ``x`` as whole rows along dim 0 (seeded)."""
    rows = max(1, max_elems // max(1, x[0].numel()))
    if x.shape[0] <= rows:
        return x
    g = torch.Generator(device='cpu').manual_seed(seed)
    return x.index_select(0, torch.randperm(x.shape[0], generator=g)[:rows].to(x.device))


@torch.no_grad()
def pick_best(q: UniformQuantizer, scales: Tensor, zps: Tensor,
              error_fn: Callable[[Tensor, Tensor], Tensor], bytes_per_candidate: int,
              mem_cap_mb: int, current: Optional[Tensor] = None) -> Tensor:
    """Evaluate candidates in chunks; set ``q`` to the best per group; return the best errors.

    ``error_fn(s, z)`` takes ``[c, *scale_shape]`` candidates and returns errors of shape
    ``[c, *scale_shape]``. If ``current`` errors are given the current parameters are kept
    where no candidate beats them, so a search round never makes the objective worse.
    """
    chunk = max(1, (mem_cap_mb << 20) // max(1, bytes_per_candidate))
    errs = torch.cat([error_fn(scales[i:i + chunk], zps[i:i + chunk])
                      for i in range(0, scales.shape[0], chunk)])
    best_err, best = errs.min(dim=0, keepdim=True)
    new_s = scales.gather(0, best).squeeze(0)
    new_z = zps.gather(0, best).squeeze(0)
    best_err = best_err.squeeze(0)
    if current is not None and q.calibrated:
        keep = current <= best_err
        new_s = torch.where(keep, q.scale.expand_as(new_s), new_s)
        new_z = torch.where(keep, q.zero_point.expand_as(new_z), new_z)
        best_err = torch.minimum(current, best_err)
    q.set_params(new_s, new_z)
    return best_err


def reduce_error(sq_err: Tensor, scale_shape: Sequence[int]) -> Tensor:
    """Mean of ``[c, *shape]`` squared errors over every dim where the scale is 1 (per group)."""
    dims = [d + 1 for d, s in enumerate(scale_shape) if s == 1 and sq_err.shape[d + 1] != 1]
    out = sq_err.mean(dim=dims, keepdim=True) if dims else sq_err
    return out.reshape(sq_err.shape[0], *scale_shape)
