"""Stage A for one op: minmax, or the alternating output-MSE search of ALGORITHM §2."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..quant import QuantMatMul
from ..quant.quantizer import Log2Quantizer
from .search import (SearchOptions, end_candidates, pick_best, quantize_with, range_candidates,
                     reduce_error, subsample)


def _out_error(y_c: Tensor, y: Tensor, per_channel: bool, channel_dim: int) -> Tensor:
    """Squared output error of candidate outputs ``[c, *y.shape]`` per channel or per tensor."""
    sq = (y_c - y.unsqueeze(0)).pow_(2)
    if not per_channel:
        return sq.flatten(1).mean(dim=1)
    dims = [d for d in range(1, sq.dim()) if d != channel_dim + 1]
    return sq.mean(dim=dims)


def weight_error_fn(w: Tensor, x: Tensor, xq: Tensor) -> Callable[[Tensor], Tensor]:
    """Per-output-channel MSE of ``xq @ w_c.T`` against ``x @ w.T`` for candidate weights.

    ``err_o = mean_t (xq_t·w_c,o - x_t·w_o)²``. With ``d = w_c - w`` and ``e = x - xq`` this
    is ``(d_o C d_o - 2 d_o·(G w_o) + w_o A w_o) / T`` with ``C = xqᵀxq``, ``G = xqᵀe``,
    ``A = eᵀe``: the Gram form costs ``out·in²`` per candidate instead of ``T·out·in``,
    so it is used when there are more rows than input features. The bias cancels.
    """
    T, n_in = x.shape
    if n_in > T:
        y = x @ w.t()
        return lambda w_c: _out_error(torch.matmul(xq, w_c.transpose(1, 2)), y, True, 1)
    e = x - xq
    C = xq.t() @ xq
    V = w @ (xq.t() @ e).t()                       # rows: (G w_o)ᵀ
    const = (w * (w @ (e.t() @ e))).sum(dim=1)     # w_o A w_o (A symmetric)

    def err(w_c: Tensor) -> Tensor:
        d = w_c - w
        quad = (torch.matmul(d, C) * d).sum(dim=2)
        return (quad - 2 * (d * V).sum(dim=2) + const) / T
    return err


def _batched_linear(x_c: Tensor, w_c: Tensor, bias) -> Tensor:
    """Linear over candidates: ``x_c`` ``[c|1, T, in]``, ``w_c`` ``[c|1, out, in]`` -> ``[c, T, out]``."""
    y = torch.matmul(x_c, w_c.transpose(1, 2))
    return y if bias is None else y + bias


@torch.no_grad()
def calibrate_weighted(layer, x: Tensor, opts: SearchOptions, search: bool) -> dict:
    """Scales of a QuantLinear/QuantConv2d from its FP input rows ``x``.

    A conv's rows are its im2col patches (see capture.py), so both are searched as a Linear
    with the weight flattened to ``[out, in * kh * kw]``.
    """
    wq, aq = layer.w_quant, layer.a_quant
    w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    x = x.to(w.dtype)
    try:
        if not search:
            wq.init_minmax(w)
            aq.init_minmax(x)
            return {}
        return _search_weighted(layer, w, x, opts)
    finally:  # per-channel weight scales back to the weight's own rank
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        wq.set_params(wq.scale.reshape(shape), wq.zero_point.reshape(shape))


def _search_weighted(layer, w: Tensor, x: Tensor, opts: SearchOptions) -> dict:
    wq, aq = layer.w_quant, layer.a_quant
    ch_dim = 1
    y = F.linear(x, w, layer.bias)
    cap = opts.mem_cap_mb
    # 1-2: weight-MSE and input-MSE starting points.
    s, z = range_candidates(wq, w, (opts.w_pct, 1.0), opts.eq_n, opts.max_quantile_elems, opts.seed)
    pick_best(wq, s, z, lambda s_, z_: reduce_error((quantize_with(wq, w, s_, z_) - w).pow(2),
                                                    s.shape[1:]),
              w.numel() * 8, cap)
    sa, za = range_candidates(aq, x, (opts.a_pct, 1.0), opts.eq_n, opts.max_quantile_elems, opts.seed)
    xs = subsample(x, opts.input_mse_elems, opts.seed)
    pick_best(aq, sa, za, lambda s_, z_: reduce_error((quantize_with(aq, xs, s_, z_) - xs).pow(2),
                                                      sa.shape[1:]),
              xs.numel() * 8, cap)
    # 3: alternate weight and activation by output MSE; never accept a worse objective.
    history = []
    for _ in range(opts.search_round):
        out_err = weight_error_fn(w, x, aq(x))
        w_err = lambda s_, z_: out_err(quantize_with(wq, w, s_, z_)).reshape(s_.shape)  # noqa: E731
        cur = w_err(wq.scale.unsqueeze(0), wq.zero_point.unsqueeze(0))[0]
        pick_best(wq, s, z, w_err, min(y.numel(), w.numel()) * 8 + w.numel() * 4, cap, current=cur)
        wqv = wq(w).unsqueeze(0)
        a_err = lambda s_, z_: _out_error(_batched_linear(quantize_with(aq, x.unsqueeze(0), s_, z_), wqv, layer.bias),  # noqa: E731
                                          y, False, ch_dim).reshape(s_.shape)
        cur = a_err(aq.scale.unsqueeze(0), aq.zero_point.unsqueeze(0))[0]
        best = pick_best(aq, sa, za, a_err, y.numel() * 8 + x.numel() * 4, cap, current=cur)
        history.append(float(best.mean()))
    return {'out_mse': history}


@torch.no_grad()
def calibrate_matmul(mm: QuantMatMul, a: Tensor, b: Tensor, opts: SearchOptions, search: bool) -> dict:
    """Per-head operand scales of ``a @ b`` (``[B, heads, ...]``)."""
    qa, qb = mm.quant_a, mm.quant_b
    qa.init_minmax(a)
    qb.init_minmax(b)
    if not search:
        return {}
    y = a @ b
    cap = opts.mem_cap_mb
    history = []

    def head_err(y_c):
        return _out_error(y_c, y, True, 1).view(y_c.shape[0], *qa.scale.shape)

    for _ in range(opts.search_round):
        for q, operand, other_is_b in ((qa, a, True), (qb, b, False)):
            for which in ('upper', 'lower'):
                if which == 'lower' and (isinstance(q, Log2Quantizer) or bool((operand >= 0).all())):
                    continue  # nothing below zero to refine (post-softmax probabilities)
                s, z = end_candidates(q, operand, opts.mm_pct, opts.eq_n, which,
                                      opts.max_quantile_elems, opts.seed)
                if other_is_b:
                    bq = qb(b)
                    err = lambda s_, z_: head_err(quantize_with(qa, a.unsqueeze(0), s_, z_) @ bq)  # noqa: E731
                else:
                    aqv = qa(a)
                    err = lambda s_, z_: head_err(aqv @ quantize_with(qb, b.unsqueeze(0), s_, z_))  # noqa: E731
                cur = err(q.scale.unsqueeze(0), q.zero_point.unsqueeze(0))[0]
                best = pick_best(q, s, z, err, y.numel() * 8 + operand.numel() * 4, cap, current=cur)
        history.append(float(best.mean()))
    return {'out_mse': history}
