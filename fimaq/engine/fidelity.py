"""How far a quantized detector's outputs are from the FP detector's, image by image.

AP on a small evaluation split moves by about a point with the calibration draw, which hides
the differences between reconstruction losses. The KL of the detector's outputs to the FP
detector's (ALGORITHM §3.2, the quantity stage B approximates) is measured per evaluation
image on the FP model's own proposals and detections, so two quantized models are compared
on the same images, pairwise, with far less noise.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn

from ..models.outputs import DetectorKL, DetectorOutputs
from ..recon.targets import output_kl_terms
from .data import _unwrap_dataset_cfg, preprocess_batches


def eval_batches(cfg, model: nn.Module, num_images: int) -> list:
    """The first ``num_images`` images of the config's test split, one per batch, as model inputs."""
    from mmdet.registry import DATASETS

    ds_cfg = copy.deepcopy(_unwrap_dataset_cfg(cfg.test_dataloader['dataset']))
    ds_cfg['test_mode'] = True
    dataset = DATASETS.build(ds_cfg)
    items = [dataset[i] for i in range(min(num_images, len(dataset)))]
    return preprocess_batches(model, items, 1)


def fp_reference(model: nn.Module, batches: Sequence) -> DetectorKL:
    """FP proposals, detections and outputs of ``model`` (an FP detector) on ``batches``."""
    return DetectorKL(model, batches)


@torch.no_grad()
def output_kl_per_image(model: nn.Module, reference: DetectorKL, batches: Sequence,
                        T: float = 1.0) -> list[dict[str, float]]:
    """For each image, ``{output name: KL(FP || model)}`` at temperature ``T`` on the FP
    proposals and detections held by ``reference``."""
    ref_out = reference.outputs
    outputs = DetectorOutputs(model, ref_out.num_proposals, ref_out.num_dets)
    rows = []
    for i, (inputs, _) in enumerate(batches):
        cur = outputs(model.extract_feat(inputs), reference.fixed[i])
        rows.append({n: float(t) for n, t in output_kl_terms(cur, reference.fp[i], T).items()})
    return rows


def group_terms(row: dict[str, float]) -> dict[str, float]:
    """Sum the terms of every cascade stage: ``roi_cls.0 + roi_cls.1 + ... -> roi_cls``."""
    out: dict[str, float] = {}
    for name, value in row.items():
        key = name.split('.')[0]
        out[key] = out.get(key, 0.0) + value
    return out


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)
