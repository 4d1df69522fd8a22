"""``--dry-run``: what a run would quantize and reconstruct, and the memory it would need.

Nothing is calibrated. One forward of the detector on a blank image of the run's input
shape gives every block's input/output size; autograd's saved tensors, counted with
``saved_tensors_hooks`` during one reconstruction step and one full-model KL pass, give
the activation memory. The estimate of a block's peak resident memory is

    base (process + libraries, measured now) + model weights and AdaRound state
    + the calibration images and the FP targets of the detector KL (held for the whole run)
    + the block's caches held in RAM (up to recon.cache_mb; the rest is memory-mapped)
    + max(one reconstruction step, one Fisher pass)

The image, target and cache terms are exact. A step or pass counts twice what autograd
saves (the saved tensors, then gradients of about the same size during backward), plus the
|gradient| sum a Fisher pass keeps (per image for fisher_brecq). benchmarks/dry_run_check.py compares the
estimate with a measured run.
"""
from __future__ import annotations

import resource
import sys
from contextlib import contextmanager

import torch
from mmdet.structures import DetDataSample
from torch import nn

from ..calib import run_stage_a
from ..config import QuantConfig
from ..models import quantize_detector_modules
from ..models.detector import detector_features, detector_forward
from ..models.outputs import DetectorKL
from ..quant import set_quant_mode
from ..recon.cache import flat, tensors_of
from ..recon.reconstruct import BlockReconstructor

MiB = 2 ** 20


@contextmanager
def count_saved_bytes(model: nn.Module):
    """Bytes of the tensors autograd saves for backward inside the block (``box[0]``),
    each storage once, the model's own parameters not counted (they exist anyway)."""
    box = [0]
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            box[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield box


def rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MiB if sys.platform == 'darwin' else peak / 1024


def noise_batch(n: int, shape: tuple[int, int], seed: int = 0, device='cpu'):
    """A batch of ``n`` seeded noise images of ``shape`` (already normalised) with the
    metainfo mmdet's detectors need: enough to run any detector without data."""
    h, w = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h, w, generator=g).to(device)
    samples = []
    for _ in range(n):
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                            batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))
        samples.append(s)
    return x, samples


def blank_batch(model: nn.Module, n: int, shape: tuple[int, int]):
    """:func:`noise_batch` on the model's device."""
    return noise_batch(n, shape, device=next(model.parameters()).device)


def dry_run_plan(model: nn.Module, qcfg: QuantConfig, shape: tuple[int, int]) -> tuple[str, dict]:
    """The plan as Markdown, and its numbers (per block) for tests and benchmarks."""
    base_mb = rss_mb()
    qm = quantize_detector_modules(model, qcfg.w_bits, qcfg.a_bits, qcfg.backbone_only,
                                   qcfg.softmax_quantizer)
    model.eval()
    set_quant_mode(model, 'fp')
    batch = blank_batch(model, 1, shape)
    # min/max scales from one noise image, so that every quantizer is active as in a real run
    run_stage_a(qm.ops(), qm.layernorm_pairs, [batch], detector_forward(model), search=False,
                reparam=False, opts=qcfg.search_opts, max_rows=qcfg.max_rows,
                capture_mb=qcfg.capture_mb, device=batch[0].device, log=lambda s: None)
    recon = qcfg.recon
    n_img = qcfg.recon_images
    bs = recon.batch_size if recon else 1
    dtype_bytes = torch.finfo(getattr(torch, recon.cache_dtype)).bits // 8 if recon else 2
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / MiB
    lines = [f'# Dry run: {qcfg.method} W{qcfg.w_bits}A{qcfg.a_bits}, input {shape[0]}x{shape[1]}',
             '', f'{len(qm.layers)} quantized layers, {len(qm.matmuls)} quantized matmuls, '
             f'{len(qm.fp_modules)} modules kept FP, {len(qm.blocks)} reconstruction blocks; '
             f'weights {weights_mb:.0f} MiB.', '', '## Quantized ops', '',
             '| op | type | weight bits | input bits |', '|---|---|---|---|']
    for name, op in qm.ops().items():
        wq = getattr(op, 'w_quant', None)
        a_bits = getattr(getattr(op, 'a_quant', None), 'bits', None) or \
            getattr(getattr(op, 'quant_a', None), 'bits', '-')
        lines.append(f'| {name} | {type(op).__name__} | {wq.bits if wq is not None else "-"} | {a_bits} |')
    lines += ['', '| kept FP | why |', '|---|---|'] + [f'| {n} | {why} |' for n, why in qm.fp_modules.items()]

    # Block sizes from one forward.
    sizes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, block in qm.blocks:
        def hook(m, args, out, name=name):
            sizes[name] = (sum(t[0].numel() for a in args for t in tensors_of(a)),
                           flat(tensors_of(out)).shape[1])
        hooks.append(block.register_forward_hook(hook))
    with torch.no_grad():
        detector_features(model)(batch)
    for h in hooks:
        h.remove()

    # Activation memory: one Fisher pass (full-model KL on one calibration batch) ...
    fisher_mb = targets_mb = 0.0
    images_mb = n_img * batch[0][0].numel() * 4 / MiB if recon is not None else 0.0
    if recon is not None and recon.loss.startswith('fisher'):
        kl_batch = blank_batch(model, bs, shape)   # stage B batches hold recon.batch_size images
        kl = DetectorKL(model, [kl_batch], qcfg.temperature, qcfg.target_weights, qcfg.target)
        targets_mb = n_img / bs * sum(
            t.numel() * t.element_size() for _, t in kl.fp[0].values()) / MiB
        set_quant_mode(model, 'quant')
        with count_saved_bytes(model) as box:
            kl(0, kl_batch)   # the graph is freed on return; the hook has counted it
        fisher_mb = 2 * box[0] / MiB
        del kl
    rows, numbers = [], {}
    set_quant_mode(model, 'quant')
    for name, block in qm.blocks:
        n_in, n_out = sizes[name]
        cache_mb = n_img * (2 * n_in + n_out) * dtype_bytes / MiB
        ram_mb = min(cache_mb, recon.cache_mb) if recon else 0.0
        step_mb = 0.0
        if recon is not None:  # ... and one reconstruction step of this block
            captured = {}

            def grab(m, args, out):
                captured['args'] = args
            h = block.register_forward_hook(grab)
            with torch.no_grad():
                detector_features(model)(batch)
            h.remove()
            args = tuple(a.detach().repeat(bs, *[1] * (a.dim() - 1)) if torch.is_tensor(a) else a
                         for a in captured['args'])
            rec = BlockReconstructor(block, recon, log=lambda s: None)  # the model is discarded
            with count_saved_bytes(model) as box:
                out = flat(tensors_of(block(*args)))
            step_mb = 2 * box[0] / MiB + 3 * out.numel() * 4 / MiB   # + output, target, grad
            adaround_mb = sum(r.alpha.numel() * 4 * 3 for r in rec.rounders) / MiB  # α + Adam
            del out, rec
        else:
            adaround_mb = 0.0
        # + |gradient| rows: one running sum, or one row per image for fisher_brecq
        rows_n = n_img if recon is not None and recon.loss == 'fisher_brecq' else 2
        pass_mb = fisher_mb + (rows_n * n_out * 4 / MiB if fisher_mb else 0.0)
        peak = (base_mb + weights_mb + adaround_mb + images_mb + targets_mb + ram_mb
                + max(step_mb, pass_mb))
        numbers[name] = dict(inputs=n_in, outputs=n_out, cache_mb=cache_mb, ram_mb=ram_mb,
                             disk_mb=cache_mb - ram_mb, step_mb=step_mb, fisher_mb=pass_mb,
                             peak_mb=peak)
        rows.append(f'| {name} | {n_in} | {n_out} | {cache_mb:.0f} | {ram_mb:.0f} | '
                    f'{cache_mb - ram_mb:.0f} | {step_mb:.0f} | {pass_mb:.0f} | {peak:.0f} |')
    lines += ['', f'## Blocks (stage B on {n_img} images at batch {bs}, caches in '
              f'{recon.cache_dtype if recon else "float16"}, RAM budget '
              f'{recon.cache_mb if recon else "-"} MiB; process base {base_mb:.0f} MiB, '
              f'calibration images {images_mb:.0f} MiB, KL targets {targets_mb:.0f} MiB)', '',
              '| block | input elems/img | output elems/img | caches MiB | in RAM | on disk | '
              'step MiB | Fisher pass MiB | est. peak MiB |', '|---|---|---|---|---|---|---|---|---|']
    lines += rows if recon is not None else ['| (no stage B for this method) |||||||||']
    if recon is not None:
        worst = max(numbers.values(), key=lambda v: v['peak_mb'])['peak_mb']
        lines += ['', f'Estimated peak resident memory: {worst:.0f} MiB '
                  f'({worst / 1024:.1f} GiB); caches on disk at most '
                  f'{max(v["disk_mb"] for v in numbers.values()):.0f} MiB.']
    return '\n'.join(lines), dict(blocks=numbers, base_mb=base_mb, weights_mb=weights_mb)
