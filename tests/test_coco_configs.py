"""The paper's four COCO detectors build and run their --dry-run here (no data, no weights)."""
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

CONFIGS = {  # config: (quantized layers, quantized matmuls) of the whole detector
    'mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py': (72, 24),
    'mask-rcnn_swin-s-p4-w7_fpn_ms-crop-3x_coco.py': (120, 48),
    'cascade-mask-rcnn_swin-t-p4-w7_fpn_4conv1fc-giou_ms-crop-3x_coco.py': (99, 24),
    'cascade-mask-rcnn_swin-s-p4-w7_fpn_4conv1fc-giou_ms-crop-3x_coco.py': (147, 48),
}


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_paper_config_dry_run(config, tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/quant_test.py', f'mmdet_configs/swin/{config}', 'unused.pth',
         '--method', 'fimaq', '--w-bits', '4', '--a-bits', '4', '--dry-run',
         '--dry-run-shape', '128', '160', '--quant-options', 'recon_images=4',
         '--work-dir', str(tmp_path), '--threads', '1'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    layers, matmuls = CONFIGS[config]
    plan = (tmp_path / 'dry_run.md').read_text()
    assert f'{layers} quantized layers, {matmuls} quantized matmuls' in plan
    depth = 18 if 'swin-s' in config else 6
    assert f'| backbone.stages.2.blocks.{depth - 1} |' in plan and '| neck |' in plan
    assert 'Estimated peak resident memory' in plan
