"""The public entry point: ``quantize(model, calib_batches, QuantConfig)``."""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .calib import run_stage_a
from .config import QuantConfig
from .errors import DeviceMemoryError
from .models import QuantizedModel, quantize_detector_modules
from .models.detector import detector_features, detector_forward
from .models.outputs import DetectorKL
from .quant import set_quant_mode
from .recon.reconstruct import reconstruct
from .state import RunState


def quantize(model: nn.Module, calib_batches: Sequence, qcfg: QuantConfig,
             forward: Callable | None = None, log: Callable[[str], None] = print,
             recon_batches: Sequence | None = None,
             state: Optional[RunState] = None) -> QuantizedModel:
    """Quantize ``model`` in place and return what was done.

    ``calib_batches`` are ready model inputs (for mmdet detectors: ``(inputs, data_samples)``
    after the data preprocessor, padded to one shape). Surgery, then stage A (min/max or
    the scale search, with the LayerNorm reparameterization when enabled), then stage B
    block reconstruction on ``recon_batches`` (default: the calibration batches) when
    ``qcfg.recon`` is set; the model is left in ``quant`` mode.
    """
    qcfg.validate()
    qm = quantize_detector_modules(model, qcfg.w_bits, qcfg.a_bits, qcfg.backbone_only,
                                   qcfg.softmax_quantizer)
    forward = forward or detector_forward(model)
    device = next(model.parameters()).device
    set_quant_mode(model, 'fp')
    was_training = model.training
    model.eval()
    state = state or RunState()
    loaded = state.load_stage_a(model)
    if loaded is not None:
        qm.stats = loaded
    else:
        t0 = time.time()
        try:
            qm.stats = run_stage_a(qm.ops(), qm.layernorm_pairs, calib_batches, forward,
                                   search=qcfg.search, reparam=qcfg.reparam, opts=qcfg.search_opts,
                                   max_rows=qcfg.max_rows,
                                   capture_mb=qcfg.capture_mb, device=device, log=log)
        except torch.OutOfMemoryError:
            raise DeviceMemoryError(
                f'stage A ran out of device memory; lower mem_cap_mb (now '
                f'{qcfg.search_opts.mem_cap_mb}), capture_mb (now {qcfg.capture_mb}) or max_rows '
                f'(now {qcfg.max_rows}) with --quant-options') from None
        state.save_stage_a(model, qm.stats, time.time() - t0)
    if qcfg.recon is not None:
        batches = recon_batches or calib_batches
        kl = None
        if qcfg.recon.loss.startswith('fisher'):
            kl = DetectorKL(model, batches, qcfg.temperature, qcfg.target_weights, qcfg.target)
        done, stats = state.load_stage_b(model)
        try:
            qm.recon_stats = reconstruct(qm.blocks, model, batches, detector_features(model), kl,
                                         qcfg.recon, log=log, done=done, stats=stats,
                                         on_block=lambda d, st: state.save_block(model, d, st))
        except torch.OutOfMemoryError:
            raise DeviceMemoryError(
                f'stage B ran out of device memory; lower recon.batch_size (now '
                f'{qcfg.recon.batch_size}), recon.fisher_images (now {qcfg.recon.fisher_images}, '
                f'0 = all) or recon_images (now {qcfg.recon_images}); finished blocks are kept') from None
    set_quant_mode(model, 'quant')
    model.train(was_training)
    return qm
