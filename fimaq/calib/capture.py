"""Capture the FP inputs of quantized ops during forward passes, under a memory budget.

Token inputs (rows of a Linear, windows of an attention matmul) are subsampled (seeded)
to a fixed number per op spread over the batches. A convolution's input is unfolded into
its patches (im2col), which makes the conv a Linear over patch rows: the rows are then
subsampled like tokens, and maps of different sizes (an RPN conv runs on every FPN level)
mix freely. Running per-tensor / per-head extremes are
tracked over *all* data so that ``minmax`` does not depend on the subsample.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..quant import QuantConv2d, QuantLinear, QuantMatMul


def conv_patches(conv: QuantConv2d, x: Tensor) -> Tensor:
    """Rows of im2col patches, ``[N * L, C * kh * kw]``: the conv is a Linear over them."""
    if conv.groups != 1:
        raise NotImplementedError(f'{conv.name}: grouped convolutions are not supported by the search')
    cols = F.unfold(x, conv.weight.shape[2:], conv.dilation, conv.padding, conv.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


class OpCapture:
    """Inputs of one op, accumulated over batches."""

    def __init__(self, op: nn.Module, num_batches: int, max_rows: int, seed: int) -> None:
        self.op = op
        self.max_rows, self.num_batches = max_rows, max(1, num_batches)
        self.gen = torch.Generator(device='cpu').manual_seed(seed)
        self.parts: list[list[Tensor]] = []
        self.lo: list = []
        self.hi: list = []
        self.nbytes = 0

    def _pick(self, n: int, tokens_per_row: int = 1):
        """Seeded row indices (or None for all): ``max_rows`` tokens over all batches.

        A matmul row is a whole window of ``tokens_per_row`` tokens, so windows count
        against the same token budget as Linear rows.
        """
        per_batch = max(1, math.ceil(max(1, self.max_rows // tokens_per_row) / self.num_batches))
        if n <= per_batch:
            return None
        return torch.randperm(n, generator=self.gen)[:per_batch]

    @staticmethod
    def _take(x: Tensor, idx) -> Tensor:
        return x if idx is None else x.index_select(0, idx.to(x.device))

    def _track(self, i: int, x: Tensor, keep_dim) -> None:
        dims = [d for d in range(x.dim()) if d != keep_dim]
        lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
        if len(self.lo) <= i:
            self.lo.append(lo)
            self.hi.append(hi)
        else:
            self.lo[i] = torch.minimum(self.lo[i], lo)
            self.hi[i] = torch.maximum(self.hi[i], hi)

    def add(self, *tensors: Tensor) -> None:
        tensors = [x.detach() for x in tensors]
        if isinstance(self.op, QuantMatMul):
            # Both operands keep the same windows, so that a @ b stays a true product.
            rows = [x.reshape(-1, *x.shape[-3:]) for x in tensors]
            idx = self._pick(rows[0].shape[0], tokens_per_row=tensors[0].shape[-2])
            for i, x in enumerate(tensors):
                self._track(i, x, 1)
            kept = [self._take(r, idx) for r in rows]
        else:
            x = tensors[0]
            self._track(0, x, None)
            rows = x.reshape(-1, x.shape[-1]) if isinstance(self.op, QuantLinear) else \
                conv_patches(self.op, x)
            kept = [self._take(rows, self._pick(rows.shape[0]))]
        self.parts.append([t.cpu() for t in kept])
        self.nbytes += sum(t.numel() * t.element_size() for t in kept)

    def tensors(self, device) -> list[Tensor]:
        # Rows, windows and images of different batches all concatenate along dim 0.
        return [torch.cat([p[i] for p in self.parts]).to(device) for i in range(len(self.parts[0]))]

    def extremes(self, i: int = 0) -> tuple[Tensor, Tensor]:
        return self.lo[i], self.hi[i]


def capture_inputs(ops: dict[str, nn.Module], batches: Sequence, forward: Callable,
                   max_rows: int, seed: int) -> dict[str, OpCapture]:
    """Run ``forward(batch)`` over ``batches`` with hooks on ``ops``; return their captures."""
    caps = {name: OpCapture(op, len(batches), max_rows, seed + i)
            for i, (name, op) in enumerate(ops.items())}
    handles = [op.register_forward_pre_hook(lambda m, args, c=caps[name]: c.add(*args))
               for name, op in ops.items()]
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n, c in caps.items() if not c.parts]
    if missing:
        raise RuntimeError(f'{len(missing)} quantized ops never ran on the calibration data '
                           f'(first: {missing[0]}); check the calibration inputs')
    return caps


def probe_bytes(ops: dict[str, nn.Module], batch, forward: Callable, num_batches: int,
                max_rows: int) -> dict[str, int]:
    """Estimated capture bytes per op for the whole run, from one batch."""
    caps = capture_inputs(ops, [batch], forward, max_rows * num_batches, 0)
    est = {}
    for name, c in caps.items():
        rows = c.parts[0][0].shape[0]
        est[name] = int(c.nbytes / max(rows, 1) * min(rows * num_batches, max_rows))
    return est
