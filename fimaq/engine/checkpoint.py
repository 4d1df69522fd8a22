"""Checkpoint loading that works on torch >= 2.6 and fails loudly when keys do not fit.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True``, which rejects the numpy
scalars and mmengine objects (message hub, history buffers) that Runner checkpoints hold, so
mmengine 0.10.7 cannot resume or load its own checkpoints. Allow-listing those classes needs
``getattr``, which removes the protection anyway, so instead we register one local-file
loader that calls ``torch.load(..., weights_only=False)``: **local checkpoint files are
trusted** (they are your own or ones you downloaded on purpose); never point a tool at a
checkpoint you would not run as code. Remote URLs keep mmengine's own loaders.
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
from typing import Callable, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from ..state import RunState
from .errors import UserError


def load_from_trusted_local(filename: str, map_location=None):
    """mmengine local-file scheme loader; ``weights_only=False`` on purpose (see module doc)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def trust_local_checkpoints() -> None:
    """Route mmengine's local checkpoint loading (load_from, resume) through our loader."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_trusted_local, force=True)


def read_checkpoint(path: str) -> dict:
    """Read a checkpoint file and return its state dict, with one-line errors."""
    if not osp.exists(path):
        raise UserError(f'checkpoint {path} does not exist; pass the path of a .pth file '
                        '(the embedded default is checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth)')
    if not os.access(path, os.R_OK):
        raise UserError(f'checkpoint {path} is not readable; check its permissions')
    try:
        ckpt = load_from_trusted_local(path, map_location='cpu')
    except Exception as exc:  # corrupt file, not a torch file, truncated download ...
        raise UserError(f'checkpoint {path} could not be read ({type(exc).__name__}: '
                        f'{str(exc).splitlines()[0][:120] if str(exc) else ""}); '
                        're-download or re-create it') from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f'checkpoint {path} holds no state dict of tensors; '
                        'pass a model checkpoint (.pth with a "state_dict")')
    # Checkpoints saved from DataParallel/DDP wrappers carry a 'module.' prefix.
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def load_detector_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Load ``path`` into ``model`` strictly; a mismatch is a one-line :class:`UserError`."""
    state = read_checkpoint(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong_shape:
        def first(keys):
            return ', '.join(keys[:3]) + (' ...' if len(keys) > 3 else '')
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing ({first(missing)})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected ({first(unexpected)})')
        if wrong_shape:
            parts.append(f'{len(wrong_shape)} with another shape ({first(wrong_shape)})')
        raise UserError(f'checkpoint {path} does not fit the model of the config: '
                        f'{"; ".join(parts)} keys; pass the checkpoint trained with this config')
    model.load_state_dict(state, strict=True)


def build_detector(cfg, checkpoint: str) -> torch.nn.Module:
    """The config's detector with ``checkpoint`` loaded strictly, in eval mode (CPU)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    model = MODELS.build(cfg.model)
    load_detector_checkpoint(model, checkpoint)
    return model.eval()


QUANTIZED_FORMAT = 'fimaq-quantized-v1'
STAGE_A_FORMAT = 'fimaq-stage-a-v1'
STAGE_B_FORMAT = 'fimaq-stage-b-v1'


def _write_state(path: str, fmt: str, model: torch.nn.Module, **fields) -> None:
    """The model's state dict with ``fields``, tagged with format ``fmt``, written atomically."""
    from .report import atomic_path
    with atomic_path(path) as tmp:
        torch.save({'state_dict': model.state_dict(), **fields, 'meta': {'format': fmt}}, tmp)


def _read_state(path: str, fmt: str) -> Optional[dict]:
    """A file written by ``_write_state`` with format ``fmt``, else None."""
    ckpt = load_from_trusted_local(path, map_location='cpu') if osp.isfile(path) else None
    if not isinstance(ckpt, dict) or ckpt.get('meta', {}).get('format') != fmt:
        return None
    return ckpt


def save_quantized(model: torch.nn.Module, qcfg, path: str) -> None:
    """Write the quantized model (weights, scales, reparameterized norms) and its QuantConfig."""
    _write_state(path, QUANTIZED_FORMAT, model, quant=qcfg.to_dict())


def _load_quant_state(model: torch.nn.Module, state: dict, path: str) -> None:
    """Load a quantized state dict into a model that went through the same surgery."""
    from ..quant import QuantModule
    for name, m in model.named_modules():  # a reparameterization may have added a bias
        if isinstance(m, QuantModule) and getattr(m, 'bias', 0) is None and f'{name}.bias' in state:
            m.bias = torch.nn.Parameter(torch.empty_like(state[f'{name}.bias']))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f'quantized checkpoint {path} does not fit the model of the config: '
                        f'{len(missing)} missing, {len(unexpected)} unexpected keys '
                        f'(first: {(missing + unexpected)[0]})')


def load_quantized(model: torch.nn.Module, path: str):
    """Rebuild the quantized ops of ``model`` (an FP detector) from ``path``; no calibration.

    The surgery is replayed from the saved QuantConfig, then the saved state is loaded
    strictly, so the outputs are bit-identical to those of the model that was saved.
    """
    from ..config import QuantConfig
    from ..models import quantize_detector_modules
    from ..quant import set_quant_mode
    ckpt = _read_state(path, QUANTIZED_FORMAT)
    if ckpt is None:
        raise UserError(f'{path} is not a fimaq quantized checkpoint (written as quantized.pth '
                        'in the work dir of tools/quant_test.py)')
    qcfg = QuantConfig.from_dict(ckpt['quant'])
    qm = quantize_detector_modules(model, qcfg.w_bits, qcfg.a_bits, qcfg.backbone_only,
                                   qcfg.softmax_quantizer)
    _load_quant_state(model, ckpt['state_dict'], path)
    set_quant_mode(model, 'quant')
    return qm, qcfg


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha1 of every tensor of the state dict: which FP weights a stage A result belongs to."""
    h = hashlib.sha1()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def read_stage_a(path: str, key: dict) -> dict:
    """A saved stage A result computed from exactly ``key``, else a one-line UserError."""
    ckpt = _read_state(path, STAGE_A_FORMAT)
    if ckpt is None:
        raise UserError(f'{path} is not a fimaq stage A state (written as stage_a.pth in the '
                        'work dir of tools/quant_test.py)')
    diff = sorted(k for k in set(key) | set(ckpt['key']) if key.get(k) != ckpt['key'].get(k))
    if diff:
        k = diff[0]
        raise UserError(f'stage A state {path} was computed with other settings ({len(diff)} '
                        f'differ, e.g. {k}: {_short(ckpt["key"].get(k))} there, {_short(key.get(k))} '
                        'here); drop --stage-a or pass a matching one')
    return ckpt


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + '...'


class WorkDirState(RunState):
    """Partial results as files in the work dir: ``stage_a.pth`` and ``stage_b.pth``.

    Each is written atomically with the key it was computed from (settings, FP weights,
    calibration image ids); a later run with the same key resumes from it. ``stage_a``
    names another run's stage_a.pth to reuse; it must match (one-line error otherwise).
    """

    def __init__(self, work_dir: str, key_a: dict, key_b: Optional[dict] = None,
                 stage_a: Optional[str] = None, log: Callable[[str], None] = print,
                 warn: Optional[Callable[[str], None]] = None) -> None:
        self.path_a = osp.join(work_dir, 'stage_a.pth')
        self.path_b = osp.join(work_dir, 'stage_b.pth')
        self.key_a, self.key_b, self.stage_a = key_a, key_b, stage_a
        self.log, self.warn = log, warn or log
        self.stage_a_seconds = 0.0
        self.stage_a_reused: Optional[str] = None
        if stage_a and not osp.isfile(stage_a):
            raise UserError(f'stage A state {stage_a} does not exist; pass the stage_a.pth '
                            'written in the work dir of an earlier run')

    def load_stage_a(self, model):
        path = self.stage_a or (self.path_a if osp.isfile(self.path_a) else None)
        if path is None:
            return None
        try:
            ckpt = read_stage_a(path, self.key_a)
        except UserError as exc:
            if self.stage_a:
                raise
            self.warn(f'not reusing {path}: {exc}')
            return None
        _load_quant_state(model, ckpt['state_dict'], path)
        self.stage_a_seconds, self.stage_a_reused = ckpt['seconds'], path
        self.log(f'stage A: reused {path} (computed in {ckpt["seconds"]:.0f} s)')
        return ckpt['stats']

    def save_stage_a(self, model, stats, seconds):
        self.stage_a_seconds = seconds
        _write_state(self.path_a, STAGE_A_FORMAT, model, key=self.key_a, stats=stats,
                     seconds=seconds)
        self.log(f'stage A: {seconds:.0f} s; saved to {self.path_a}')

    def load_stage_b(self, model):
        if self.key_b is None or not osp.isfile(self.path_b):
            return [], {}
        ckpt = _read_state(self.path_b, STAGE_B_FORMAT)
        if ckpt is None or ckpt.get('key') != self.key_b:
            self.warn(f'not resuming from {self.path_b}: it was computed with other settings')
            return [], {}
        _load_quant_state(model, ckpt['state_dict'], self.path_b)
        return list(ckpt['done']), dict(ckpt['stats'])

    def save_block(self, model, done, stats):
        _write_state(self.path_b, STAGE_B_FORMAT, model, key=self.key_b, done=list(done),
                     stats=stats)
