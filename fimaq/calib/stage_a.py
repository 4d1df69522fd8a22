"""Stage A driver: capture FP inputs group by group, reparameterize, search every op."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
from torch import nn

from ..quant import QuantMatMul
from .capture import capture_inputs, probe_bytes
from .ops import calibrate_matmul, calibrate_weighted
from .reparam import fold_layernorm, per_channel_params
from .search import SearchOptions


def plan_groups(order: Sequence[str], est_bytes: dict[str, int], budget: int) -> list[list[str]]:
    """Consecutive ops in forward order, packed into groups whose captures fit ``budget``."""
    groups, cur, used = [], [], 0
    for name in order:
        if cur and used + est_bytes[name] > budget:
            groups.append(cur)
            cur, used = [], 0
        cur.append(name)
        used += est_bytes[name]
    if cur:
        groups.append(cur)
    return groups


def run_stage_a(ops: dict[str, nn.Module], layernorm_pairs: list, batches: Sequence,
                forward: Callable, *, search: bool, reparam: bool, opts: SearchOptions,
                max_rows: int = 8192, capture_mb: int = 2048,
                device: torch.device = torch.device('cpu'),
                log: Callable[[str], None] = print) -> dict[str, dict]:
    """Calibrate every op of ``ops`` (all in FP mode) on ``batches``; return per-op stats.

    ``layernorm_pairs`` are (LayerNorm, Linear, padding owner) triples; with ``reparam`` the
    LayerNorm is reparameterized before its Linear is searched.
    """
    t0 = time.time()
    order_seen: list[str] = []
    hooks = [op.register_forward_pre_hook(lambda m, a, n=name: order_seen.append(n))
             for name, op in ops.items()]
    try:
        est = probe_bytes(ops, batches[0], forward, len(batches), max_rows)
    finally:
        for h in hooks:
            h.remove()
    order = list(dict.fromkeys(order_seen))
    groups = plan_groups(order, est, capture_mb << 20)
    log(f'stage A: {len(ops)} ops in {len(groups)} capture group(s), '
        f'{len(batches)} calibration batch(es), search={search}, reparam={reparam}')
    pair_of = {id(lin): (ln, lin, pad) for ln, lin, pad in layernorm_pairs}
    stats: dict[str, dict] = {}
    done = 0
    for gi, group in enumerate(groups):
        caps = capture_inputs({n: ops[n] for n in group}, batches, forward, max_rows,
                              opts.seed + 1000 * gi)
        for name in group:
            op, cap = ops[name], caps[name]
            tensors = cap.tensors(device)
            if isinstance(op, QuantMatMul):
                st = calibrate_matmul(op, tensors[0], tensors[1], opts, search)
                if not search:  # minmax from the running extremes over all data
                    for q, i in ((op.quant_a, 0), (op.quant_b, 1)):
                        q.set_params(*q.params_from_range(*cap.extremes(i)))
            else:
                x = tensors[0]
                if reparam and id(op) in pair_of:
                    ln, lin, pad = pair_of[id(op)]
                    s_c, z_c = per_channel_params(x, op.a_quant.bits, opts)
                    r, b = fold_layernorm(ln, lin, s_c, z_c, pad)
                    x = x / r - b  # the captured LayerNorm output, transformed alike
                st = calibrate_weighted(op, x, opts, search)
                if not search:
                    op.a_quant.set_params(*op.a_quant.params_from_range(*cap.extremes(0)))
            stats[name] = st
            done += 1
            if done % max(1, len(ops) // 10) == 0 or done == len(ops):
                log(f'stage A: {done}/{len(ops)} ops calibrated ({time.time() - t0:.0f} s), '
                    f'last: {name}')
        del caps
    return stats
