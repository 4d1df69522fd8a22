"""Stage B: block-wise reconstruction (ALGORITHM §3), one block at a time in forward order.

For each block: cache its FP input/output (all FP) and its quantized input (earlier blocks
quantized); learn AdaRound rounding of its weights and the scales of its activation
quantizers with QDrop, minimising the chosen loss plus the rounding regulariser; make the
rounding hard. The Fisher losses capture |∂KL/∂y| of the full model and |ŷ - y| k times.
Nothing here knows the architecture: the caller passes the blocks, a forward that reaches
them, and the full-model KL.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import NonFiniteLossError
from ..quant import QuantModule, UniformQuantizer, set_quant_mode
from ..quant.adaround import AdaRoundQuantizer
from .cache import BlockCache, CacheBudget, capture_block, flat, tensors_of
from .fisher import FisherState
from .losses import (Normalized, beta_at, fisher_brecq_loss, fisher_diag_loss, fisher_lr_loss,
                     mae_loss, mse_loss)

LOSSES = ('mse', 'mae', 'fisher_brecq', 'fisher_diag', 'fisher_lr', 'fisher_dplr')


@dataclass
class ReconOptions:
    loss: str = 'fisher_dplr'
    iters: int = 20000
    batch_size: int = 1
    lr_w: float = 1e-3            # AdaRound α (Adam)
    lr_a: float = 4e-5            # activation scales (Adam, cosine to 0)
    lam: float = 0.01             # rounding regulariser weight
    beta: tuple = (20.0, 2.0)
    warmup: float = 0.2
    drop_prob: float = 0.5        # QDrop
    k: int = 5                    # Fisher updates
    fisher_mode: str = 'q'
    p1: float = 1.0               # DPLR weights
    p2: float = 1.0
    fisher_images: int = 0        # images per Fisher gradient (0: all)
    cache_dtype: str = 'float16'
    cache_mb: int = 8192          # RAM for the three caches of a block; beyond it, disk
    cache_dir: str = ''           # where spilled caches are memory-mapped ('' = system temp)
    seed: int = 0

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f'recon loss {self.loss!r} unknown; choose one of {", ".join(LOSSES)}')
        if self.iters < 1 or self.batch_size < 1 or self.k < 1:
            raise ValueError('recon iters, batch_size and k must be >= 1')
        if self.cache_mb < 0:
            raise ValueError(f'recon cache_mb={self.cache_mb}; use 0 or more MiB (0: all on disk)')


def _replace_tensors(obj, fn):
    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_replace_tensors(o, fn) for o in obj)
    return obj


def block_output_grads(block: nn.Module, batches: Sequence, kl_loss: Callable[[int, object], Tensor],
                       per_sample: bool = False) -> Tensor:
    """E over images of |∂KL/∂y| for the block output y (or per-sample rows if asked)."""
    leaves: list[Tensor] = []

    def hook(module, args, out):
        def leaf(t):
            t = t.detach().requires_grad_(True)
            leaves.append(t)
            return t
        return _replace_tensors(out, leaf)

    handle = block.register_forward_hook(hook)
    rows: list[Tensor] = []
    total, count = None, 0
    try:
        for i, batch in enumerate(batches):
            leaves.clear()
            loss = kl_loss(i, batch)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
            grads = [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]
            g = flat(grads).detach()
            if per_sample:
                rows.append(g)
            else:  # a running sum: one row of memory, not one per image
                total = g.abs().sum(dim=0) if total is None else total + g.abs().sum(dim=0)
                count += g.shape[0]
    finally:
        handle.remove()
    return torch.cat(rows) if per_sample else total / count


class BlockReconstructor:
    """Reconstructs one block; holds its trainables and the loss state."""

    def __init__(self, block: nn.Module, opts: ReconOptions, log: Callable[[str], None]) -> None:
        self.block, self.opts, self.log = block, opts, log
        self.ops = [m for m in block.modules() if isinstance(m, QuantModule)]
        self.rounders: list[AdaRoundQuantizer] = []
        self.act_quants: list[UniformQuantizer] = []
        for m in self.ops:
            if hasattr(m, 'w_quant'):
                m.w_quant = AdaRoundQuantizer(m.w_quant, m.weight)
                self.rounders.append(m.w_quant)
            for q in m.children():
                if isinstance(q, UniformQuantizer) and q.calibrated:
                    q.scale = nn.Parameter(q.scale.detach().clone())
                    self.act_quants.append(q)

    def set_qdrop(self, p: float) -> None:
        for q in self.act_quants:
            q.drop_prob = p

    def finish(self) -> None:
        """Hard rounding; weights replaced by their quantized values; scales frozen."""
        self.set_qdrop(0.0)
        with torch.no_grad():
            for m in self.ops:
                if isinstance(getattr(m, 'w_quant', None), AdaRoundQuantizer):
                    m.w_quant.harden()
                    m.weight.data.copy_(m.w_quant(m.weight))
                    m.w_quant = m.w_quant.to_uniform()
            for q in self.act_quants:
                scale = q.scale.detach().clone()
                del q.scale
                q.register_buffer('scale', scale)


def reconstruct(blocks: Sequence[tuple[str, nn.Module]], model: nn.Module, batches: Sequence,
                run_features: Callable, kl_loss: Optional[Callable], opts: ReconOptions,
                log: Callable[[str], None] = print, done: Sequence[str] = (),
                stats: Optional[dict] = None,
                on_block: Optional[Callable[[list, dict], None]] = None) -> dict[str, dict]:
    """Reconstruct ``blocks`` in order; the model ends in quant mode. Returns per-block stats.

    Blocks named in ``done`` were reconstructed by an earlier run (their weights are already
    in the model) and are skipped; ``on_block(done, stats)`` is called after each block.
    """
    opts.validate()
    fisher_loss = opts.loss.startswith('fisher')
    if fisher_loss and kl_loss is None:
        raise ValueError(f'recon loss {opts.loss} needs the model KL (kl_loss)')
    dtype = getattr(torch, opts.cache_dtype)
    device = next(model.parameters()).device
    done_ops: set = set()
    stats = dict(stats or {})
    finished = [n for n, _ in blocks if n in set(done)]
    if finished:
        log(f'stage B: resuming after {len(finished)} reconstructed block(s) (last: {finished[-1]})')
    fisher_batches = batches if not opts.fisher_images else batches[:max(1, opts.fisher_images)]
    for bi, (name, block) in enumerate(blocks):
        if name in finished:
            done_ops |= {m for m in block.modules() if isinstance(m, QuantModule)}
            continue
        t0 = time.time()
        # Every block draws its own seeded streams, so a block's result depends only on its
        # inputs (a run resumed at a block reproduces an uninterrupted one).
        gen = torch.Generator(device='cpu').manual_seed(opts.seed * 1000 + bi)
        torch.manual_seed(opts.seed * 1000 + bi)   # QDrop inside the activation quantizers
        budget = CacheBudget(opts.cache_mb << 20, opts.cache_dir or None)
        set_quant_mode(model, 'fp')
        fp = capture_block(block, batches, run_features, inputs=True, outputs=True, dtype=dtype,
                           budget=budget)
        set_quant_mode(model, 'quant', only=done_ops)
        xq = capture_block(block, batches, run_features, inputs=True, outputs=False, dtype=dtype,
                           budget=budget)
        if budget.disk_bytes:
            log(f'stage B: block {name} caches: {budget.ram_bytes / 2**20:.0f} MiB in RAM, '
                f'{budget.disk_bytes / 2**20:.0f} MiB memory-mapped in {budget.spill_dir} '
                f'(recon.cache_mb={opts.cache_mb})')
        rec = BlockReconstructor(block, opts, log)
        block_ops = set(rec.ops)
        set_quant_mode(model, 'quant', only=done_ops | block_ops)
        if not rec.rounders and not rec.act_quants:
            log(f'stage B: block {name} has nothing to learn; skipped')
            done_ops |= block_ops
            continue
        opt_w = torch.optim.Adam([r.alpha for r in rec.rounders], lr=opts.lr_w) if rec.rounders else None
        opt_a = torch.optim.Adam([q.scale for q in rec.act_quants], lr=opts.lr_a) if rec.act_quants else None
        sched_a = torch.optim.lr_scheduler.CosineAnnealingLR(opt_a, T_max=opts.iters, eta_min=0) if opt_a else None

        state = FisherState(opts.k, opts.iters, opts.fisher_mode, log=log) if fisher_loss else None
        norms = [Normalized(), Normalized()]
        grad_sq, before_s, update_s = None, 0.0, 0.0   # Fisher time: once before, in the loop
        if opts.loss == 'fisher_brecq':
            t_f = time.time()
            grad_sq = block_output_grads(block, batches, kl_loss, per_sample=True).pow(2).to('cpu')
            before_s = time.time() - t_f
        n_img = len(fp)
        first_loss = last_loss = float('nan')
        t_loop = time.time()
        for it in range(opts.iters):
            if state is not None and opts.loss != 'fisher_brecq' and state.due(it):
                t_f = time.time()
                rec.set_qdrop(0.0)
                g = block_output_grads(block, fisher_batches, kl_loss)
                d = _mean_abs_change(block, fp, xq, device)
                state.add(g.to(device), d.to(device))
                for n in norms:
                    n.reset()
                update_s += time.time() - t_f
            rec.set_qdrop(opts.drop_prob)
            idx = torch.randint(n_img, (opts.batch_size,), generator=gen).tolist()
            x_q, x_fp = xq.input_batch(idx, device), fp.input_batch(idx, device)
            x = [torch.where(torch.rand(a.shape, generator=gen).to(device) < opts.drop_prob, a, b)
                 for a, b in zip(x_q, x_fp)]
            out = flat(tensors_of(block(*fp.call_args(x))))
            target = flat(fp.output_batch(idx, device))
            loss = _rec_loss(opts, out, target, state, norms, grad_sq, idx, device)
            beta = beta_at(it, opts.iters, opts.warmup, *opts.beta)
            total = loss if beta is None or not rec.rounders else \
                loss + opts.lam * sum(r.regularizer(beta) for r in rec.rounders)
            if not torch.isfinite(total):
                raise NonFiniteLossError(
                    f'stage B: non-finite loss ({float(total.detach())}) in block {name} at '
                    f'iteration {it}; stopped there, the {len(finished)} block(s) before it are kept')
            for o in (opt_w, opt_a):
                if o is not None:
                    o.zero_grad(set_to_none=True)
            total.backward()
            for o in (opt_w, opt_a):
                if o is not None:
                    o.step()
            if sched_a is not None:
                sched_a.step()
            last_loss = float(loss.detach())
            if it == 0:
                first_loss = last_loss
            if (it + 1) % max(1, opts.iters // 5) == 0 or it + 1 == opts.iters:
                el = time.time() - t0
                log(f'stage B: block {bi + 1}/{len(blocks)} {name} it {it + 1}/{opts.iters} '
                    f'loss {last_loss:.4g} beta {beta if beta is not None else "-"} '
                    f'({el:.0f} s, ~{el / (it + 1) * (opts.iters - it - 1):.0f} s left)')
        rec.finish()
        done_ops |= block_ops
        finished.append(name)
        loop_s = time.time() - t_loop - update_s
        stats[name] = dict(first_loss=first_loss, last_loss=last_loss, seconds=time.time() - t0,
                           fisher_seconds=before_s + update_s, fisher_updates=len(state.g_rows) if state else 0,
                           seconds_per_iter=loop_s / opts.iters)
        if on_block is not None:
            on_block(list(finished), stats)
    set_quant_mode(model, 'quant')
    return stats


def _mean_abs_change(block: nn.Module, fp: BlockCache, xq: BlockCache, device) -> Tensor:
    """E over images of |ŷ - y|: the block (quantized) on quantized inputs vs its FP output."""
    total = None
    with torch.no_grad():
        for i in range(len(fp)):
            out = flat(tensors_of(block(*fp.call_args(xq.input_batch([i], device)))))
            d = (out - flat(fp.output_batch([i], device))).abs()[0]
            total = d if total is None else total + d
    return total / len(fp)


def _rec_loss(opts: ReconOptions, out: Tensor, target: Tensor, state, norms, grad_sq, idx, device) -> Tensor:
    if opts.loss == 'mse':
        return norms[0](mse_loss(out, target))
    if opts.loss == 'mae':
        return norms[0](mae_loss(out, target))
    if opts.loss == 'fisher_brecq':
        return norms[0](fisher_brecq_loss(out, target, grad_sq[idx].to(device)))
    G = state.G
    if opts.loss == 'fisher_diag':
        return norms[1](fisher_diag_loss(out, target, G))
    if opts.loss == 'fisher_lr':
        return norms[0](fisher_lr_loss(out, target, G, state.b_inv))
    return (opts.p1 * norms[0](fisher_lr_loss(out, target, G, state.b_inv))
            + opts.p2 * norms[1](fisher_diag_loss(out, target, G)))
