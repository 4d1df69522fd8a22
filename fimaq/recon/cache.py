"""Per-image caches of a block's inputs and outputs, on the CPU (fp16 by default).

A :class:`CacheBudget` caps the bytes kept in RAM over the caches of one block; beyond it,
tensors go to memory-mapped files (unlinked at once, so nothing is left behind even if the
process dies), which the OS pages in when a minibatch needs them.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn


def tensors_of(obj) -> list[Tensor]:
    """The tensors of a block output (a tensor, or a tuple/list that may hold shapes)."""
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in tensors_of(o)]
    return []


def flat(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate per-sample flattened tensors: ``[batch, N]``."""
    return torch.cat([t.flatten(1) for t in tensors], dim=1)


class CacheBudget:
    """RAM bytes the caches of one block may hold; the rest is spilled to ``spill_dir``."""

    def __init__(self, ram_bytes: Optional[int] = None, spill_dir: Optional[str] = None) -> None:
        self.left = float('inf') if ram_bytes is None else ram_bytes
        self.spill_dir = spill_dir or tempfile.gettempdir()
        self.ram_bytes = 0
        self.disk_bytes = 0

    def place(self, t: Tensor) -> Tensor:
        """``t`` itself if it fits in RAM, else a copy backed by a memory-mapped file."""
        n = t.numel() * t.element_size()
        if n <= self.left:
            self.left -= n
            self.ram_bytes += n
            return t
        os.makedirs(self.spill_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix='fimaq-cache-', suffix='.bin', dir=self.spill_dir)
        os.close(fd)
        try:
            mapped = torch.from_file(path, shared=True, size=t.numel(), dtype=t.dtype)
        finally:
            os.unlink(path)   # the mapping stays valid; the file disappears with it
        self.disk_bytes += n
        return mapped.view(t.shape).copy_(t)


class BlockCache:
    """Inputs (tensor args + the other args) and output tensors of one block, per image."""

    def __init__(self, dtype: torch.dtype = torch.float16, budget: Optional[CacheBudget] = None) -> None:
        self.dtype = dtype
        self.budget = budget or CacheBudget()
        self.inputs: list[list[Tensor]] = []     # per image: tensor args
        self.outputs: list[list[Tensor]] = []    # per image: output tensors
        # How to rebuild the args: ('tensor',), ('seq', n) for a tuple of n tensors (the FPN's
        # input), ('static', value) for anything else (e.g. hw_shape).
        self.arg_spec: list[tuple] = []

    def __len__(self) -> int:
        return max(len(self.inputs), len(self.outputs))

    def _store(self, tensors: Sequence[Tensor]) -> list[list[Tensor]]:
        stored = [self.budget.place(t.detach().to('cpu', self.dtype)) for t in tensors]
        return [[t[i:i + 1] for t in stored] for i in range(tensors[0].shape[0])]

    def add_inputs(self, args: tuple) -> None:
        spec = []
        for a in args:
            if torch.is_tensor(a):
                spec.append(('tensor',))
            elif isinstance(a, (list, tuple)) and a and all(torch.is_tensor(t) for t in a):
                spec.append(('seq', len(a)))
            else:
                spec.append(('static', a))
        self.arg_spec = spec
        self.inputs += self._store([t for a in args for t in tensors_of(a)])

    def add_outputs(self, out) -> None:
        self.outputs += self._store(tensors_of(out))

    def input_batch(self, idx: Sequence[int], device, dtype=torch.float32) -> list[Tensor]:
        return [torch.cat([self.inputs[i][j] for i in idx]).to(device, dtype)
                for j in range(len(self.inputs[0]))]

    def output_batch(self, idx: Sequence[int], device, dtype=torch.float32) -> list[Tensor]:
        return [torch.cat([self.outputs[i][j] for i in idx]).to(device, dtype)
                for j in range(len(self.outputs[0]))]

    def call_args(self, tensor_args: list[Tensor]) -> tuple:
        """Rebuild the block's positional args from (batched) cached tensors."""
        it = iter(tensor_args)
        args = []
        for spec in self.arg_spec:
            if spec[0] == 'tensor':
                args.append(next(it))
            elif spec[0] == 'seq':
                args.append(tuple(next(it) for _ in range(spec[1])))
            else:
                args.append(spec[1])
        return tuple(args)


def capture_block(block: nn.Module, batches: Sequence, run: Callable, *, inputs: bool,
                  outputs: bool, dtype: torch.dtype, budget: Optional[CacheBudget] = None) -> BlockCache:
    """Run ``run(batch)`` over ``batches`` and cache ``block``'s inputs and/or outputs."""
    cache = BlockCache(dtype, budget)

    def hook(module, args, out):
        if inputs:
            cache.add_inputs(args)
        if outputs:
            cache.add_outputs(out)

    handle = block.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for batch in batches:
                run(batch)
    finally:
        handle.remove()
    return cache
