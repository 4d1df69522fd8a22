"""End-to-end runs of the tools on the embedded benchmark (slow; run in CI)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

import make_shapes_coco
from conftest import REPO_ROOT

PY = sys.executable
MASK_CFG = 'mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py'
MASK_CKPT = 'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth'


def run(*args, timeout=1500):
    proc = subprocess.run([PY, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def recorded_fp(name):
    """FP AP measured when the checkpoint was published (checkpoints/fp_results.json)."""
    return json.load(open(osp.join(REPO_ROOT, 'checkpoints', 'fp_results.json')))[name]


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mask-rcnn_swin-tiny_fpn_shapes',   # the default run
                                  'mask-rcnn_vit-tiny_fpn_shapes'])
def test_embedded_checkpoint_reproduces_recorded_fp_ap(tmp_path, name):
    model = [] if name == 'mask-rcnn_swin-tiny_fpn_shapes' else \
        [f'mmdet_configs/tiny/{name}.py', f'checkpoints/{name}.pth']
    proc = run('tools/quant_test.py', *model, '--work-dir', str(tmp_path))
    res = json.load(open(tmp_path / 'results.json'))
    ref = recorded_fp(name)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP_75'):
        assert res['metrics'][key] == pytest.approx(ref[key], abs=0.005), key
    assert res['num_images'] == 100
    assert f'| {name} | fp | FP |' in proc.stdout


@pytest.mark.slow
def test_calib_w8a8_stays_close_to_fp_on_a_subset(tmp_path):
    common = [MASK_CFG, MASK_CKPT, '--cfg-options', 'test_dataloader.dataset.indices=20']
    run('tools/quant_test.py', *common, '--work-dir', str(tmp_path / 'fp'))
    run('tools/quant_test.py', *common, '--work-dir', str(tmp_path / 'q'), '--method', 'calib',
        '--w-bits', '8', '--a-bits', '8', '--calib-images', '4',
        '--quant-options', 'eq_n=16', 'search_round=1', 'max_rows=1024')
    fp = json.load(open(tmp_path / 'fp' / 'results.json'))['metrics']
    q = json.load(open(tmp_path / 'q' / 'results.json'))
    assert q['method'] == 'calib' and q['w_bits'] == 8
    assert abs(q['metrics']['coco/bbox_mAP'] - fp['coco/bbox_mAP']) < 0.03
    assert abs(q['metrics']['coco/segm_mAP'] - fp['coco/segm_mAP']) < 0.03
    report = open(tmp_path / 'q' / 'quant_report.md').read()
    assert 'roi_head.mask_head.upsample | ConvTranspose2d' in report
    # The saved stage A result is reused (same settings): identical AP without recalibrating;
    # other settings are refused with a one-line error.
    again = ['--method', 'calib', '--calib-images', '4', '--stage-a', str(tmp_path / 'q' / 'stage_a.pth'),
             '--quant-options', 'eq_n=16', 'search_round=1', 'max_rows=1024']
    run('tools/quant_test.py', *common, '--work-dir', str(tmp_path / 'r'), '--w-bits', '8',
        '--a-bits', '8', *again)
    r = json.load(open(tmp_path / 'r' / 'results.json'))
    assert r['stage_a_reused'] and r['metrics'] == q['metrics']
    # tools/output_kl.py: the two runs hold the same model, so the same KL image by image
    run('tools/output_kl.py', MASK_CFG, MASK_CKPT, f'q={tmp_path / "q"}', f'r={tmp_path / "r"}',
        '--images', '4', '--out', str(tmp_path / 'kl.md'))
    kl = json.load(open(tmp_path / 'kl.json'))
    a, b = kl['runs']
    assert a['totals'] == b['totals'] and len(a['totals']) == 4 and min(a['totals']) > 0
    text = open(tmp_path / 'kl.md').read()
    assert '| r | calib | W8A8 |' in text and '| +0 ± 0 | 0/4 |' in text
    proc = subprocess.run([sys.executable, 'tools/quant_test.py', *common, '--work-dir',
                           str(tmp_path / 's'), '--w-bits', '6', '--a-bits', '6', *again],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and '8 there, 6 here' in proc.stderr


@pytest.mark.slow
def test_train_checkpoints_and_resumes(tmp_path):
    data = tmp_path / 'shapes'
    make_shapes_coco.main(['--out', str(data), '--num-train', '8', '--num-val', '2'])
    root = f'{data}/'
    opts = ['generated_dataset=None', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}annotations/instances_val.json',
            f'test_evaluator.ann_file={root}annotations/instances_val.json',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'train_cfg.val_interval=1000',
            'default_hooks.checkpoint.interval=2']
    work = str(tmp_path / 'work')
    run('tools/train.py', MASK_CFG, '--work-dir', work, '--cfg-options', *opts, 'train_cfg.max_iters=2')
    first = torch.load(osp.join(work, 'iter_2.pth'), weights_only=False)
    run('tools/train.py', MASK_CFG, '--work-dir', work, '--resume', '--cfg-options', *opts,
        'train_cfg.max_iters=4')
    resumed = torch.load(osp.join(work, 'iter_4.pth'), weights_only=False)
    assert first['meta']['iter'] == 2 and resumed['meta']['iter'] == 4
    assert 'optimizer' in resumed and 'message_hub' in resumed


@pytest.mark.slow
def test_dry_run_prints_the_plan_without_calibrating(tmp_path):
    proc = run('tools/quant_test.py', MASK_CFG, 'no-checkpoint-needed.pth', '--method', 'fimaq',
               '--dry-run', '--dry-run-shape', '128', '160', '--work-dir', str(tmp_path),
               '--quant-options', 'recon_images=8', '--threads', '1')
    plan = (tmp_path / 'dry_run.md').read_text()
    assert plan in proc.stdout
    assert '54 quantized layers, 16 quantized matmuls' in plan and '13 reconstruction blocks' in plan
    assert '| roi_head.mask_head.upsample | ConvTranspose2d |' in plan
    # patch embed: 8 images x (2 x 3x128x160 inputs + 32x32x40 outputs) x 2 bytes (fp16)
    assert '| backbone.patch_embed | 61440 | 40960 | 2 |' in plan
    assert 'Estimated peak resident memory' in plan
    assert not (tmp_path / 'quantized.pth').exists() and not (tmp_path / 'stage_a.pth').exists()
