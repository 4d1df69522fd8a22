"""Post-LayerNorm reparameterization (ALGORITHM §2.4): per-channel scales folded into LN.

A LayerNorm's output has very different ranges per channel; one per-tensor quantizer fits
them badly. We search per-channel (s_c, z_c), then rescale and shift the LayerNorm output so
every channel shares s* = mean(s_c) and z* = round(mean(z_c)), and compensate in the next
linear layer. The FP function of the network does not change.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..quant import UniformQuantizer
from .search import (SearchOptions, pick_best, quantize_with, range_candidates, reduce_error,
                     subsample)


@torch.no_grad()
def per_channel_params(x: Tensor, bits: int, opts: SearchOptions) -> tuple[Tensor, Tensor]:
    """Per-channel (scale, zero point) of ``x`` (channels last) minimising input MSE."""
    rows = subsample(x.reshape(-1, x.shape[-1]), opts.input_mse_elems, opts.seed)
    q = UniformQuantizer(bits, axes=(1,))
    s, z = range_candidates(q, rows, (opts.a_pct, 1.0), opts.eq_n, opts.max_quantile_elems, opts.seed)
    pick_best(q, s, z, lambda s_, z_: reduce_error((quantize_with(q, rows, s_, z_) - rows).pow(2),
                                                   s.shape[1:]),
              rows.numel() * 8, opts.mem_cap_mb)
    return q.scale.reshape(-1), q.zero_point.reshape(-1)


@torch.no_grad()
def fold_layernorm(norm: nn.LayerNorm, linear: nn.Module, scale_c: Tensor, zp_c: Tensor,
                   pad_owner: Optional[nn.Module] = None) -> tuple[Tensor, Tensor]:
    """Fold per-channel activation ranges into ``norm`` and ``linear``; return (r, b).

    With s* = mean(s_c), z* = round(mean(z_c)), r_c = s_c / s*, b_c = min_c / r_c - min*
    (min_c = -z_c s_c, min* = -z* s*): the LayerNorm output x becomes x / r - b, the next
    linear's weight W[:, c] *= r_c and its bias += W b. ``pad_owner.pad_value`` (windows
    padded after the LayerNorm) becomes -b, the image of a zero.
    """
    if norm.weight is None or norm.bias is None:
        raise TypeError('LayerNorm reparameterization needs elementwise_affine=True')
    s_star = scale_c.mean()
    z_star = torch.round(zp_c.mean())
    r = scale_c / s_star
    b = (-zp_c * scale_c) / r - (-z_star * s_star)
    norm.weight.div_(r)
    norm.bias.copy_(norm.bias / r - b)
    linear.weight.mul_(r.view(1, -1))
    shift = linear.weight @ b
    if linear.bias is None:
        linear.bias = nn.Parameter(shift.clone())
    else:
        linear.bias.add_(shift)
    if pad_owner is not None:
        pad_owner.pad_value.copy_(-b)
    return r, b
