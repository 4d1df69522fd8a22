"""Bad input to tools/quant_test.py gives one line naming the file and the fix, exit code 2."""
import os.path as osp
import subprocess
import sys

import torch

from conftest import REPO_ROOT

TOOL = osp.join(REPO_ROOT, 'tools', 'quant_test.py')
CONFIG = osp.join(REPO_ROOT, 'mmdet_configs', 'tiny', 'mask-rcnn_swin-tiny_fpn_shapes.py')


def run_tool(*args, cwd=None):
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=cwd or REPO_ROOT, timeout=300)
    return proc.returncode, proc.stderr.strip()


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert 'Traceback' not in err
    last = err.splitlines()[-1]
    assert last.startswith('error: ')
    for needle in needles:
        assert needle in last, last


def test_missing_config(tmp_path):
    code, err = run_tool(str(tmp_path / 'no_config.py'), str(tmp_path / 'x.pth'))
    assert_one_line_error(code, err, 'no_config.py', 'does not exist')


def test_broken_config(tmp_path):
    cfg = tmp_path / 'broken.py'
    cfg.write_text('model = dict(\n')
    code, err = run_tool(str(cfg), str(tmp_path / 'x.pth'))
    assert_one_line_error(code, err, 'broken.py', 'could not be read')


def test_missing_checkpoint(tmp_path):
    code, err = run_tool(CONFIG, str(tmp_path / 'nothing.pth'))
    assert_one_line_error(code, err, 'nothing.pth', 'does not exist')


def test_missing_dataset(tmp_path):
    torch.save({'state_dict': {}}, tmp_path / 'empty.pth')
    code, err = run_tool(CONFIG, str(tmp_path / 'empty.pth'), '--cfg-options',
                         'generated_dataset=None', f'test_dataloader.dataset.data_root={tmp_path}/coco/')
    assert_one_line_error(code, err, f'{tmp_path}/coco/', 'data_root')


def test_checkpoint_of_another_model(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    torch.save({'state_dict': net.state_dict()}, tmp_path / 'other.pth')
    code, err = run_tool(CONFIG, str(tmp_path / 'other.pth'), '--work-dir', str(tmp_path / 'w'))
    assert_one_line_error(code, err, 'other.pth', 'does not fit', 'missing', '2 unexpected (0.weight, 0.bias)')


def test_bad_quant_options(tmp_path):
    code, err = run_tool(CONFIG, str(tmp_path / 'x.pth'), '--method', 'calib', '--w-bits', '9')
    assert_one_line_error(code, err, 'w_bits=9 is outside 2..8')
    code, err = run_tool(CONFIG, str(tmp_path / 'x.pth'), '--method', 'minmax',
                         '--quant-options', 'reparam=True')
    assert_one_line_error(code, err, 'reparam=True needs search=True')


def test_calibration_on_evaluation_images_is_refused(tmp_path):
    ckpt = osp.join(REPO_ROOT, 'checkpoints', 'mask-rcnn_swin-tiny_fpn_shapes.pth')
    code, err = run_tool(CONFIG, ckpt, '--method', 'minmax', '--calib-images', '2',
                         '--work-dir', str(tmp_path), '--cfg-options',
                         'train_dataloader.dataset.ann_file=annotations/instances_val.json',
                         'train_dataloader.dataset.data_prefix.img=val/')
    assert_one_line_error(code, err, 'calibration image(s) are also evaluation images',
                          '--allow-overlap')
