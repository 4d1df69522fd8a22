"""QuantConfig and the named methods. A method is a configuration, never a code path."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional

from .calib.search import SearchOptions
from .recon.reconstruct import ReconOptions

# Every method's settings on top of the QuantConfig defaults.
METHODS: dict[str, dict[str, Any]] = {
    'fp': dict(quantize=False),
    'minmax': dict(search=False, reparam=False),
    'calib': dict(search=True, reparam=True),
    'mse': dict(recon=dict(loss='mse')),
    'fisher_brecq': dict(recon=dict(loss='fisher_brecq')),
    'fisher_diag': dict(recon=dict(loss='fisher_diag')),
    'fisher_lr': dict(recon=dict(loss='fisher_lr')),
    'fimaq': dict(recon=dict(loss='fisher_dplr')),
}


class QuantConfigError(ValueError):
    """An invalid quantization setting; the message is one line naming the option."""


@dataclass
class QuantConfig:
    method: str = 'calib'
    w_bits: int = 4
    a_bits: int = 4
    quantize: bool = True            # False: evaluate the FP model (method fp)
    backbone_only: bool = False      # default: the whole detector, as in published tables
    softmax_quantizer: str = 'uniform'  # or 'log2' for the post-softmax operand
    search: bool = True              # stage A percentile search (False: min/max scales)
    reparam: bool = True             # LayerNorm -> next-linear reparameterization
    calib_images: int = 32           # stage A calibration images
    calib_batch_size: int = 4
    calib_shape: str = 'common'      # draw among the most common input shape, or 'largest'
    seed: int = 0
    max_rows: int = 4096             # token / patch rows or windows captured per op
    capture_mb: int = 2048           # capture budget of one forward group
    search_opts: SearchOptions = field(default_factory=SearchOptions)
    # Stage B (None: no reconstruction). ``recon=dict(loss=..., iters=..., ...)``: ReconOptions.
    recon: Optional[ReconOptions] = None
    recon_images: int = 256          # stage B calibration images (batch 1 as published)
    target: str = 'kl'               # detector KL target: 'kl' (ALGORITHM §3.2) or 'rpn'
    temperature: float = 20.0
    target_weights: Optional[dict] = None

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> 'QuantConfig':
        cfg = dict(cfg)
        method = cfg.get('method', cls.method)
        if method not in METHODS:
            raise QuantConfigError(f'unknown quantization method {method!r}; '
                                   f'choose one of {", ".join(METHODS)}')
        merged = {**METHODS[method], **cfg}
        recon = {**(METHODS[method].get('recon') or {}), **(cfg.get('recon') or {})}
        merged['recon'] = recon or None
        search_keys = {f.name for f in fields(SearchOptions)}
        opts = {k: merged.pop(k) for k in list(merged) if k in search_keys}
        opts.update(merged.pop('search_opts', None) or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise QuantConfigError(f'unknown quant option(s) {", ".join(unknown)}; '
                                   f'known: {", ".join(sorted(known | search_keys))}')
        if merged['recon'] is not None:
            known_r = {f.name for f in fields(ReconOptions)}
            bad = sorted(set(merged['recon']) - known_r)
            if bad:
                raise QuantConfigError(f'unknown recon option(s) {", ".join(bad)}; '
                                       f'known: {", ".join(sorted(known_r))}')
            merged['recon'] = ReconOptions(**merged['recon'])
        qcfg = cls(**merged, search_opts=SearchOptions(**opts))
        qcfg.validate()
        return qcfg

    def validate(self) -> None:
        for name in ('w_bits', 'a_bits'):
            bits = getattr(self, name)
            if not isinstance(bits, int) or not 2 <= bits <= 8:
                raise QuantConfigError(f'{name}={bits!r} is outside 2..8; pass an integer '
                                       'bit width from 2 to 8')
        if self.softmax_quantizer not in ('uniform', 'log2'):
            raise QuantConfigError(f'softmax_quantizer={self.softmax_quantizer!r}; '
                                   'use "uniform" or "log2"')
        if self.calib_shape not in ('common', 'largest'):
            raise QuantConfigError(f'calib_shape={self.calib_shape!r}; use "common" (images of '
                                   'the most common input shape) or "largest" (pad to the largest)')
        if self.reparam and not self.search:
            raise QuantConfigError('reparam=True needs search=True (the reparameterization '
                                   'uses the searched per-channel scales); set reparam=False')
        if self.quantize and self.calib_images < 1:
            raise QuantConfigError(f'calib_images={self.calib_images}; need at least 1')
        if self.search_opts.eq_n < 1 or self.search_opts.search_round < 0:
            raise QuantConfigError('eq_n must be >= 1 and search_round >= 0')
        if self.recon is not None:
            try:
                self.recon.validate()
            except ValueError as exc:
                raise QuantConfigError(str(exc)) from None
            if self.recon_images < 1:
                raise QuantConfigError(f'recon_images={self.recon_images}; need at least 1')
        if self.target not in ('kl', 'rpn'):
            raise QuantConfigError(f'target={self.target!r}; use "kl" or "rpn"')

    # The fields stage A depends on (with every search option except mem_cap_mb, which only
    # sets the chunking): runs that agree on them can share one stage A result.
    STAGE_A_FIELDS = ('w_bits', 'a_bits', 'backbone_only', 'softmax_quantizer', 'search', 'reparam',
                      'calib_images', 'calib_batch_size', 'seed', 'max_rows', 'capture_mb')

    def stage_a_key(self) -> dict:
        d = self.to_dict()
        key = {k: d[k] for k in self.STAGE_A_FIELDS}
        key.update({f'search_opts.{k}': v for k, v in d['search_opts'].items() if k != 'mem_cap_mb'})
        return key

    @property
    def tag(self) -> str:
        """The run's name in work dirs: ``fp`` or ``<method>_w<W>a<A>``."""
        return f'{self.method}_w{self.w_bits}a{self.a_bits}' if self.quantize else 'fp'

    def to_dict(self) -> dict:
        return asdict(self)
