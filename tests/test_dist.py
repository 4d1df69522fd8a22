"""Distributed quant_test on the CPU: two gloo processes give the AP of one process."""
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

CFG = 'mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py'
CKPT = 'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth'
ARGS = ['--method', 'minmax', '--w-bits', '6', '--a-bits', '6', '--calib-images', '4',
        '--threads', '1', '--cfg-options', 'test_dataloader.dataset.indices=20']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    one = subprocess.run([sys.executable, 'tools/quant_test.py', CFG, CKPT, '--work-dir',
                          str(tmp_path / 'one'), *ARGS], cwd=REPO_ROOT, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    env = dict(os.environ, PORT=str(free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable)
    two = subprocess.run(['bash', 'tools/dist_quant_test.sh', CFG, CKPT, '2', '--work-dir',
                          str(tmp_path / 'two'), *ARGS], cwd=REPO_ROOT, capture_output=True,
                         text=True, env=env, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.load(open(tmp_path / 'one' / 'results.json'))
    b = json.load(open(tmp_path / 'two' / 'results.json'))
    assert a['metrics'] == b['metrics']
    assert a['metrics']['coco/bbox_mAP'] > 0.3
    # Quantized once (rank 0) and shared through quantized.pth; no markers left behind.
    assert os.path.isfile(tmp_path / 'two' / 'quantized.pth')
    assert not [f for f in os.listdir(tmp_path / 'two') if f.startswith('.quantized')]
