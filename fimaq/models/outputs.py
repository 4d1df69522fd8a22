"""The raw probabilistic outputs of an mmdet two-stage detector, on fixed FP inputs.

The detector KL of stage B (ALGORITHM §3.2) compares FP and quantized outputs on the same
proposals and detections, fixed once from the FP model per calibration image:
RPN objectness (sigmoid logits) and deltas on every anchor; RoI class logits and box deltas
of every (cascade) stage on the FP proposals; mask logits of every mask head on the FP top
detections (the channel of the detected class). Each output carries its kind
('bernoulli', 'softmax' or 'gaussian') for recon/targets.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from mmdet.structures.bbox import bbox2roi
from torch import Tensor, nn


@dataclass
class FixedRois:
    """FP proposals and FP top detections of one calibration batch (input coordinates)."""

    proposals: Tensor        # [R, 5] rois (batch index, x1, y1, x2, y2)
    det_rois: Tensor         # [M, 5]
    det_labels: Tensor       # [M]


class DetectorOutputs:
    """``outputs(feats, fixed) -> {name: (kind, tensor)}`` for Mask R-CNN / Cascade."""

    def __init__(self, model: nn.Module, num_proposals: int = 100, num_dets: int = 20) -> None:
        for part in ('rpn_head', 'roi_head'):
            if not hasattr(model, part):
                raise TypeError(f'{type(model).__name__} has no {part}: the detector KL '
                                'target needs a two-stage detector')
        self.model = model
        self.num_proposals, self.num_dets = num_proposals, num_dets
        self.cascade = hasattr(model.roi_head, 'num_stages')
        self.stages = model.roi_head.num_stages if self.cascade else 1

    @torch.no_grad()
    def fix(self, inputs: Tensor, samples) -> FixedRois:
        """FP proposals and detections for a batch (run with the model in FP mode)."""
        model = self.model
        feats = model.extract_feat(inputs)
        proposals = model.rpn_head.predict(feats, samples, rescale=False)
        props = [p.bboxes[:self.num_proposals] for p in proposals]
        dets = model.roi_head.predict(feats, proposals, samples, rescale=False)
        det_boxes, det_labels = [], []
        for d in dets:
            keep = d.scores.argsort(descending=True)[:self.num_dets]
            det_boxes.append(d.bboxes[keep])
            det_labels.append(d.labels[keep])
        return FixedRois(bbox2roi(props), bbox2roi(det_boxes), torch.cat(det_labels))

    def __call__(self, feats, fixed: FixedRois) -> dict[str, tuple[str, Tensor]]:
        model, roi = self.model, self.model.roi_head
        cls_scores, bbox_preds = model.rpn_head(feats)
        # Deltas ordered (anchor, position, coordinate) so that element i of the objectness
        # owns deltas 4i..4i+3.
        regs = [b.view(b.shape[0], -1, 4, *b.shape[2:]).permute(0, 1, 3, 4, 2).flatten(1)
                for b in bbox_preds]
        out = {'rpn_cls': ('bernoulli', torch.cat([c.flatten(1) for c in cls_scores], 1)),
               'rpn_reg': ('gaussian', torch.cat(regs, 1))}
        for s in range(self.stages):
            res = roi._bbox_forward(s, feats, fixed.proposals) if self.cascade else \
                roi._bbox_forward(feats, fixed.proposals)
            out[f'roi_cls.{s}'] = ('softmax', res['cls_score'])
            out[f'roi_reg.{s}'] = ('gaussian', res['bbox_pred'])
            if getattr(roi, 'with_mask', False) and fixed.det_rois.shape[0] > 0:
                m = roi._mask_forward(s, feats, fixed.det_rois) if self.cascade else \
                    roi._mask_forward(feats, fixed.det_rois)
                logits = m['mask_preds']
                if logits.shape[1] > 1:  # class-specific masks: the detected class's channel
                    logits = logits[torch.arange(logits.shape[0]), fixed.det_labels]
                out[f'mask.{s}'] = ('bernoulli', logits)
        return out


class DetectorKL:
    """The full-model KL of stage B: FP targets fixed once per calibration batch.

    ``preset='kl'``: every output of :class:`DetectorOutputs` (ALGORITHM §3.2) at
    temperature ``T`` with per-term ``weights``; ``preset='rpn'``: APHQ-ViT's RPN target.
    """

    def __init__(self, model: nn.Module, batches, T: float = 20.0, weights=None,
                 preset: str = 'kl', num_proposals: int = 100, num_dets: int = 20) -> None:
        from ..quant import set_quant_mode
        from ..recon.losses import Normalized
        if preset not in ('kl', 'rpn'):
            raise ValueError(f'detector target preset {preset!r}; use "kl" or "rpn"')
        self.model, self.T, self.weights, self.preset = model, T, weights, preset
        self.outputs = DetectorOutputs(model, num_proposals, num_dets)
        self.norms = (Normalized(), Normalized())
        set_quant_mode(model, 'fp')
        self.fixed, self.fp = [], []
        with torch.no_grad():
            for inputs, samples in batches:
                fixed = self.outputs.fix(inputs, samples)
                self.fixed.append(fixed)
                self.fp.append(self.outputs(model.extract_feat(inputs), fixed))

    def __call__(self, i: int, batch) -> Tensor:
        from ..recon.targets import output_kl, rpn_target
        inputs, _ = batch
        cur = self.outputs(self.model.extract_feat(inputs), self.fixed[i])
        if self.preset == 'rpn':
            return rpn_target(cur, self.fp[i], self.norms)
        return output_kl(cur, self.fp[i], self.T, self.weights)
