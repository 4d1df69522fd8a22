"""tools/make_table.py: fabricated results -> the exact paper-style table, CSV, LaTeX, plots."""
import json

import make_table
import pytest

PUBLISHED = {
    'fp': {'mask-rcnn_swin-t': {'box': 46.0, 'mask': 41.6}},
    'sources': {'x': {'title': 'X'}},
    'results': [
        {'method': 'FIMA-Q', 'bits': 'W4A4', 'model': 'mask-rcnn_swin-t', 'box': 40.1, 'mask': 38.2,
         'source': 'x', 'uncertain': False},
        {'method': 'RepQ-ViT', 'bits': 'W4A4', 'model': 'mask-rcnn_swin-t', 'box': 36.1, 'mask': 36.0,
         'source': 'x', 'uncertain': True},
    ],
}


def write_result(root, model, method, bits, box, mask, seed=0):
    tag = 'fp' if bits is None else f'{method}_w{bits}a{bits}_s{seed}'
    d = root / model / tag
    d.mkdir(parents=True)
    (d / 'results.json').write_text(json.dumps(dict(
        config=f'mmdet_configs/{model}.py', method=method, w_bits=bits, a_bits=bits,
        metrics={'coco/bbox_mAP': box, 'coco/segm_mAP': mask})))


def test_table_layout_published_columns_and_seeds(tmp_path):
    runs = tmp_path / 'runs'
    swin_t = 'mask-rcnn_swin-t-p4-w7_fpn_1x_coco'
    write_result(runs, swin_t, 'fp', None, 0.460, 0.416)
    write_result(runs, swin_t, 'fimaq', 4, 0.400, 0.380, seed=0)
    write_result(runs, swin_t, 'fimaq', 4, 0.410, 0.384, seed=1)
    write_result(runs, swin_t, 'calib', 4, 0.350, 0.340)
    write_result(runs, swin_t, 'calib', 3, 0.100, 0.090)
    write_result(runs, 'tiny', 'fp', None, 0.606, 0.549)
    write_result(runs, 'tiny', 'calib', 4, 0.561, 0.513)
    pub = tmp_path / 'pub.json'
    pub.write_text(json.dumps(PUBLISHED))
    out = tmp_path / 'table'
    assert make_table.main([str(runs), '--out', str(out), '--published', str(pub)]) == 0
    expected = '\n'.join([
        f'| method | {swin_t} FP | {swin_t} FP (published) | {swin_t} W4A4 | {swin_t} W4A4 (published) '
        f'| {swin_t} W3A3 | tiny FP | tiny W4A4 | tiny W3A3 |',
        '|---|---|---|---|---|---|---|---|---|',
        '| fp | 46.0 / 41.6 | 46.0 / 41.6 |  |  |  | 60.6 / 54.9 |  |  |',
        '| calib |  |  | 35.0 / 34.0 | - | 10.0 / 9.0 |  | 56.1 / 51.3 | - |',
        '| fimaq |  |  | 40.5±0.5 / 38.2±0.2 | 40.1 / 38.2 | - |  | - | - |',
        '| RepQ-ViT (published) |  |  |  | 36.1 / 36.0? |  |  |  |  |',
    ]) + '\n'
    assert (tmp_path / 'table.md').read_text() == expected
    csv_lines = (tmp_path / 'table.csv').read_text().splitlines()
    assert csv_lines[3].startswith('fimaq,,,40.5±0.5 / 38.2±0.2,40.1 / 38.2,')
    tex = (tmp_path / 'table.tex').read_text()
    assert r'\begin{tabular}{lcccccccc}' in tex and r'40.5$\pm$0.5' in tex
    for suffix in ('_ap.png', '_retention.png'):
        assert (tmp_path / f'table{suffix}').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_no_results_is_a_clear_error(tmp_path, capsys):
    assert make_table.main([str(tmp_path), '--out', str(tmp_path / 't')]) == 2
    assert 'no results.json' in capsys.readouterr().err


def test_sweep_summary_json_is_a_source(tmp_path):
    """A checked-in sweep summary gives the same cells as the work dirs it was written from."""
    runs = tmp_path / 'runs'
    write_result(runs, 'tiny', 'fp', None, 0.606, 0.549)
    write_result(runs, 'tiny', 'fimaq', 4, 0.552, 0.505)
    write_result(runs, 'tiny', 'fimaq', 3, 0.477, 0.433)
    summary = [
        dict(label={'model': 'tiny', 'method': 'fp', 'W/A': 'FP', 'seed': 0},
             metrics={'coco/bbox_mAP': 0.606, 'coco/segm_mAP': 0.549}),
        dict(label={'model': 'tiny', 'method': 'fimaq', 'W/A': 'W4A4', 'seed': 0},
             metrics={'coco/bbox_mAP': 0.552, 'coco/segm_mAP': 0.505}),
        dict(label={'model': 'tiny', 'method': 'fimaq', 'W/A': 'W3A3', 'seed': 0},
             metrics={'coco/bbox_mAP': 0.477, 'coco/segm_mAP': 0.433}),
    ]
    path = tmp_path / 'summary.json'
    path.write_text(json.dumps(summary))
    from_dirs, from_json = make_table.collect([str(runs)]), make_table.collect([str(path)])
    assert from_json == from_dirs
    assert from_json[('tiny', 'fimaq', 3)] == [pytest.approx((47.7, 43.3))]
    bad = tmp_path / 'bad.json'
    bad.write_text('{"not": "a summary"}')
    try:
        make_table.collect([str(bad)])
    except SystemExit as exc:
        assert 'bad.json is not a tools/sweep.py summary JSON' in str(exc)
    else:
        raise AssertionError('a malformed summary must be an error')
