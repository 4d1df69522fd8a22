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
