"""Distributed evaluation: quantize once on rank 0, share the result, shard the test set.

Calibration and reconstruction are computed once (rank 0) and saved as quantized.pth in
the shared work dir; the other ranks wait for a marker file (no collective, so a stage B
of hours cannot hit a process-group timeout) and load it. Evaluation is then sharded by
mmengine's sampler and the results gathered as in mmdet's dist_test.
"""
from __future__ import annotations

import os
import os.path as osp
import time

from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from .errors import UserError


@MODEL_WRAPPERS.register_module()
class QuantEvalWrapper(nn.Module):
    """The model wrapper of distributed quant_test runs: evaluation only, no gradient sync
    (DistributedDataParallel would also pin the parameters that surgery replaces)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def test_step(self, data):
        return self.module.test_step(data)

    def val_step(self, data):
        return self.module.val_step(data)

    def train_step(self, data, optim_wrapper):
        raise RuntimeError('QuantEvalWrapper is for evaluation; train with tools/train.py')


def marker(work_dir: str, token: str, state: str) -> str:
    return osp.join(work_dir, f'.quantized.{token}.{state}')


def signal(work_dir: str, token: str, state: str) -> None:
    open(marker(work_dir, token, state), 'w').close()


def wait_for_rank0(work_dir: str, token: str, poll_s: float = 2.0) -> None:
    """Block until rank 0 has written quantized.pth for this run (or failed)."""
    while True:
        if osp.exists(marker(work_dir, token, 'ready')):
            return
        if osp.exists(marker(work_dir, token, 'failed')):
            raise UserError(f'rank 0 failed while quantizing (see its log in {work_dir}); '
                            'this rank stops too')
        time.sleep(poll_s)


def cleanup(work_dir: str, token: str) -> None:
    for state in ('ready', 'failed'):
        try:
            os.remove(marker(work_dir, token, state))
        except FileNotFoundError:
            pass
