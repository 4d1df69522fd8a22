"""tools/sweep.py: cells, resume (finished cells are skipped), failures recorded, sweep goes on."""
import json
import os

import sweep


def test_cells_order_and_commands(tmp_path):
    s = sweep.parse_args(['--models', 'mask', '--methods', 'fimaq', 'calib', 'fp', '--bits', '4', '3',
                          '--seeds', '0', '1', '--work-dir', str(tmp_path),
                          '--quant-options', 'calib_images=8', '--recon-options', 'recon.iters=5'])
    cells = sweep.make_cells(s)
    tags = [os.path.basename(c['work_dir']) for c in cells]
    assert tags == ['fp', 'calib_w4a4', 'fimaq_w4a4', 'calib_w3a3', 'fimaq_w3a3',
                    'fp_seed1', 'calib_w4a4_seed1', 'fimaq_w4a4_seed1', 'calib_w3a3_seed1',
                    'fimaq_w3a3_seed1']
    calib, fimaq = cells[1], cells[2]
    assert sweep.cell_command(calib, s)[-2:] == ['--quant-options', 'calib_images=8']
    assert '--stage-a' not in sweep.cell_command(fimaq, s)   # no calib result yet
    os.makedirs(calib['work_dir'])
    open(os.path.join(calib['work_dir'], 'stage_a.pth'), 'w').close()
    cmd = sweep.cell_command(fimaq, s)
    assert cmd[cmd.index('--quant-options') + 1:cmd.index('--stage-a')] == ['calib_images=8', 'recon.iters=5']
    assert cmd[cmd.index('--stage-a') + 1] == os.path.join(calib['work_dir'], 'stage_a.pth')
    assert 'seed=1' in sweep.cell_command(cells[-1], s)


def test_resume_skips_done_cells_and_failures_do_not_stop(tmp_path):
    work = tmp_path / 'sweep'
    # Two finished cells (their results.json exist) and two that fail (no such config).
    metrics = {'coco/bbox_mAP': 0.5, 'coco/segm_mAP': 0.4}
    for tag in ('fp', 'minmax_w4a4'):
        done = work / 'mask-rcnn_swin-tiny_fpn_shapes' / tag
        done.mkdir(parents=True)
        (done / 'results.json').write_text(json.dumps({'metrics': metrics}))
    missing = str(tmp_path / 'nothing.py') + ':' + str(tmp_path / 'nothing.pth')
    code = sweep.main(['--models', 'mask', missing, '--methods', 'fp', 'minmax', '--bits', '4',
                       '--work-dir', str(work), '--out', str(tmp_path / 'summary.md')])
    assert code == 1
    status = json.load(open(work / 'sweep_status.json'))
    # The finished cells were skipped (not run, so not in the status); both cells of the
    # missing model failed with quant_test's one-line error, and the sweep went on after each.
    assert set(status) == {'nothing/fp', 'nothing/minmax_w4a4'}
    assert status['nothing/fp']['state'] == 'failed'
    assert status['nothing/minmax_w4a4']['state'] == 'failed'
    assert 'config' in status['nothing/fp']['error'] and 'does not exist' in status['nothing/fp']['error']
    summary = (tmp_path / 'summary.md').read_text()
    assert '| mask-rcnn_swin-tiny_fpn_shapes | fp | FP | 0 | 0 | 0 | 0 | 50.0 |' in summary
    assert '| mask-rcnn_swin-tiny_fpn_shapes | minmax | W4A4 | 0 | 0 | 0 | 0 | 50.0 |' in summary


def test_merge_keeps_earlier_rows_and_replaces_rerun_cells(tmp_path):
    work = tmp_path / 'sweep'
    done = work / 'mask-rcnn_swin-tiny_fpn_shapes' / 'minmax_w4a4'
    done.mkdir(parents=True)
    (done / 'results.json').write_text(json.dumps({'metrics': {'coco/bbox_mAP': 0.512,
                                                               'coco/segm_mAP': 0.471}}))

    def row(method, bits, box):
        return dict(label={'model': 'mask-rcnn_swin-tiny_fpn_shapes', 'method': method,
                           'W/A': bits, 'seed': 0, 'stage A s': '0', 'total quant s': '0',
                           'peak RSS MiB': '0'},
                    metrics={'coco/bbox_mAP': box, 'coco/segm_mAP': 0.5})

    earlier = tmp_path / 'earlier.json'
    earlier.write_text(json.dumps([row('fp', 'FP', 0.606), row('minmax', 'W4A4', 0.5),
                                   row('calib', 'W4A4', 0.561)]))
    out = tmp_path / 'summary.md'
    assert sweep.main(['--models', 'mask', '--methods', 'minmax', '--bits', '4', '--work-dir',
                       str(work), '--out', str(out), '--collect-only', '--merge', str(earlier)]) == 0
    merged = json.load(open(tmp_path / 'summary.json'))
    assert [(r['label']['method'], r['metrics']['coco/bbox_mAP']) for r in merged] == \
        [('fp', 0.606), ('minmax', 0.512), ('calib', 0.561)]
