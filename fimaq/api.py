"""The public entry point: ``quantize(model, calib_batches, QuantConfig)``."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .calib import run_stage_a
from .config import QuantConfig
from .models import QuantizedModel, quantize_detector_modules
from .models.detector import detector_forward
from .quant import set_quant_mode


def quantize(model: nn.Module, calib_batches: Sequence, qcfg: QuantConfig,
             forward: Callable | None = None, log: Callable[[str], None] = print) -> QuantizedModel:
    """Quantize ``model`` in place and return what was done.

    ``calib_batches`` are ready model inputs (for mmdet detectors: ``(inputs, data_samples)``
    after the data preprocessor, padded to one shape). Surgery, then stage A (min/max or
    the scale search, with the LayerNorm reparameterization when enabled); the model is left
    in ``quant`` mode.
    """
    qcfg.validate()
    qm = quantize_detector_modules(model, qcfg.w_bits, qcfg.a_bits, qcfg.backbone_only,
                                   qcfg.softmax_quantizer)
    forward = forward or detector_forward(model)
    device = next(model.parameters()).device
    set_quant_mode(model, 'fp')
    was_training = model.training
    model.eval()
    qm.stats = run_stage_a(qm.ops(), qm.layernorm_pairs, calib_batches, forward,
                           search=qcfg.search, reparam=qcfg.reparam, opts=qcfg.search_opts,
                           max_rows=qcfg.max_rows,
                           capture_mb=qcfg.capture_mb, device=device, log=log)
    set_quant_mode(model, 'quant')
    model.train(was_training)
    return qm
