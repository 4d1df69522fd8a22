"""QuantTestLoop: quantize the model (calibration on train images), then mmengine's test loop."""
from __future__ import annotations

import os.path as osp
import time
from dataclasses import asdict

from mmdet.registry import LOOPS
from mmengine.model import is_model_wrapper
from mmengine.dist import barrier, get_rank, get_world_size
from mmengine.runner import TestLoop

from ..api import quantize
from ..config import QuantConfig
from ..errors import NonFiniteLossError
from . import dist
from .checkpoint import WorkDirState, load_quantized, model_fingerprint, save_quantized
from .data import calibration_batches
from .errors import UserError
from .report import atomic_write_text, quant_layer_table


def _image_ids(batches) -> list:
    return [s.img_id for _, samples in batches for s in samples]


@LOOPS.register_module()
class QuantTestLoop(TestLoop):
    """``test_cfg = dict(type='QuantTestLoop', quant=dict(method='calib', w_bits=4, a_bits=4))``.

    ``quant`` holds QuantConfig fields; ``allow_overlap`` lets calibration images be
    evaluation images (refused by default). Stage A's result is saved as ``stage_a.pth`` in
    the work dir and reused by a later run there with the same stage A settings, weights and
    calibration images (so a run stopped in stage B does not redo stage A); ``stage_a``
    names such a file to reuse explicitly (e.g. one ``calib`` run shared by every stage B
    method), and it must match.
    """

    def __init__(self, runner, dataloader, evaluator, quant: dict | None = None,
                 allow_overlap: bool = False, load_quantized: str | None = None,
                 stage_a: str | None = None, fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.qcfg = QuantConfig.from_dict(quant or {})
        self.allow_overlap = allow_overlap
        self.load_quantized = load_quantized
        self.stage_a = stage_a
        self.calib_seconds = 0.0
        self.stage_a_seconds = 0.0
        self.stage_a_reused: str | None = None
        self.quantized = None

    def run(self) -> dict:
        if self.load_quantized:
            model = self.runner.model.module if is_model_wrapper(self.runner.model) else self.runner.model
            self.quantized, self.qcfg = load_quantized(model, self.load_quantized)
            self.runner.logger.info(f'loaded the quantized model {self.load_quantized} '
                                    f'({self.qcfg.method} W{self.qcfg.w_bits}A{self.qcfg.a_bits})')
        elif self.qcfg.quantize and get_world_size() > 1:
            self.quantize_once()
        elif self.qcfg.quantize:
            self.quantize()
        t0 = time.time()
        metrics = super().run()
        self.eval_seconds = time.time() - t0
        return metrics

    def quantize_once(self) -> None:
        """Distributed: rank 0 quantizes and saves; the others load its quantized.pth."""
        runner = self.runner
        token = str(runner.timestamp)   # the same on every rank (broadcast by the Runner)
        if get_rank() == 0:
            try:
                self.quantize()
            except BaseException:
                dist.signal(runner.work_dir, token, 'failed')
                raise
            dist.signal(runner.work_dir, token, 'ready')
        else:
            runner.logger.info('waiting for rank 0 to quantize the model ...')
            dist.wait_for_rank0(runner.work_dir, token)
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            self.quantized, self.qcfg = load_quantized(model, osp.join(runner.work_dir, 'quantized.pth'))
        barrier()
        if get_rank() == 0:
            dist.cleanup(runner.work_dir, token)

    def quantize(self) -> None:
        runner = self.runner
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        q = self.qcfg
        t0 = time.time()
        runner.logger.info(f'quantizing: method={q.method} W{q.w_bits}A{q.a_bits} '
                           f'calibration images={q.calib_images} (seed {q.seed})')
        batches = calibration_batches(runner.cfg, model, q.calib_images, q.calib_batch_size,
                                      q.seed, self.allow_overlap, q.calib_shape, runner.logger.info)
        recon_batches = None
        if q.recon is not None:
            # Batches of recon.batch_size (1 as published): Fisher passes and block caching
            # then hold one image's activations, not calib_batch_size images'.
            recon_batches = calibration_batches(runner.cfg, model, q.recon_images,
                                                q.recon.batch_size, q.seed, self.allow_overlap,
                                                q.calib_shape, runner.logger.info)
        key_a = dict(q.stage_a_key(), model=model_fingerprint(model),
                     calib_image_ids=_image_ids(batches))
        key_b = None
        if q.recon is not None:
            key_b = dict(key_a, recon=asdict(q.recon), recon_images=q.recon_images, target=q.target,
                         temperature=q.temperature, target_weights=q.target_weights,
                         recon_image_ids=_image_ids(recon_batches))
        state = WorkDirState(runner.work_dir, key_a, key_b, self.stage_a, log=runner.logger.info,
                             warn=runner.logger.warning)
        try:
            self.quantized = quantize(model, batches, q, log=runner.logger.info,
                                      recon_batches=recon_batches, state=state)
        except NonFiniteLossError as exc:
            raise UserError(f'{exc} (in {state.path_b}; a rerun resumes after them); lower '
                            'recon.lr_w / recon.lr_a or check the checkpoint for NaNs') from None
        self.stage_a_seconds, self.stage_a_reused = state.stage_a_seconds, state.stage_a_reused
        self.calib_seconds = time.time() - t0
        path = osp.join(runner.work_dir, 'quant_report.md')
        atomic_write_text(path, quant_layer_table(self.quantized) + '\n')
        saved = osp.join(runner.work_dir, 'quantized.pth')
        save_quantized(model, q, saved)
        runner.logger.info(f'quantized {len(self.quantized.ops())} ops in '
                           f'{self.calib_seconds:.1f} s; per-layer report: {path}; '
                           f'quantized model: {saved} (reload with --load-quantized)')
