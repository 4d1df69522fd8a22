"""Small builders shared by tests: tiny detectors with random weights and fake inputs."""
import os.path as osp

import torch
from mmengine.config import Config

from conftest import REPO_ROOT

TINY = {
    'mask': osp.join(REPO_ROOT, 'mmdet_configs', 'tiny', 'mask-rcnn_swin-tiny_fpn_shapes.py'),
    'cascade': osp.join(REPO_ROOT, 'mmdet_configs', 'tiny', 'cascade-mask-rcnn_swin-tiny_fpn_shapes.py'),
}


def build_tiny(kind: str = 'mask', seed: int = 0) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(TINY[kind])
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def fake_batch(n: int = 2, h: int = 224, w: int = 288, seed: int = 0):
    """Normalised images whose size is not a multiple of the window, and their samples."""
    from fimaq.engine.plan import noise_batch
    return noise_batch(n, (h, w), seed)


def flat_outputs(out) -> list:
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flat_outputs(o)]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in flat_outputs(out[k])]
    return []


def max_rel_diff(a, b) -> float:
    fa, fb = flat_outputs(a), flat_outputs(b)
    assert len(fa) == len(fb) and len(fa) > 0
    worst = 0.0
    for x, y in zip(fa, fb):
        assert x.shape == y.shape
        worst = max(worst, float((x - y).abs().max() / y.abs().max().clamp(min=1e-12)))
    return worst


def fixed_roi_outputs(model, x, samples, fixed=None):
    """Neck features and raw head outputs on fixed FP proposals/detections (DetectorOutputs).

    Comparing a detector with a rounding-level variant of itself needs these, not
    ``_forward``: its RPN top-k/NMS can flip a proposal on a tie. Returns ``(fixed, tensors)``;
    pass the reference's ``fixed`` when evaluating the variant."""
    from fimaq.models.outputs import DetectorOutputs
    outputs = DetectorOutputs(model)
    with torch.no_grad():
        if fixed is None:
            fixed = outputs.fix(x, samples)
        feats = model.extract_feat(x)
        return fixed, list(feats) + [t for _, t in outputs(feats, fixed).values()]


def assert_reconstruction_improves(model, name, block, batch, iters: int) -> None:
    """Reconstructing one block (MSE, batch of 2) lowers its loss and its output error, and
    its hard-rounded weights lie on their quantizer's grid."""
    from fimaq.models.detector import detector_features
    from fimaq.quant import QuantLinear, set_quant_mode
    from fimaq.recon.cache import capture_block, flat, tensors_of
    from fimaq.recon.reconstruct import ReconOptions, reconstruct
    run = detector_features(model)
    set_quant_mode(model, 'fp')
    fp = capture_block(block, [batch], run, inputs=True, outputs=True, dtype=torch.float32)

    def block_mse():
        with torch.no_grad():
            set_quant_mode(block, 'quant')
            out = flat(tensors_of(block(*fp.call_args(fp.input_batch([0, 1], 'cpu')))))
            return float((out - flat(fp.output_batch([0, 1], 'cpu'))).pow(2).mean())

    before = block_mse()
    opts = ReconOptions(loss='mse', iters=iters, batch_size=2, lr_a=1e-3, drop_prob=1.0)
    stats = reconstruct([(name, block)], model, [batch], run, None, opts, log=lambda s: None)
    assert stats[name]['last_loss'] < stats[name]['first_loss']
    assert block_mse() < before
    for m in block.modules():
        if isinstance(m, QuantLinear):
            k = m.weight / m.w_quant.scale + m.w_quant.zero_point
            assert torch.allclose(k, k.round(), atol=1e-3)
