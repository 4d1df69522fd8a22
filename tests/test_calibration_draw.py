"""Calibration protocol (ALGORITHM §3.3): predicted test shapes and the seeded draw."""
from fimaq.engine.data import draw_calibration_ids, predicted_input_shape

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(1333, 800), keep_ratio=True)]


def test_test_shape_follows_keep_ratio_resize_and_padding():
    # COCO's common 640x480 becomes 1067x800, padded to multiples of 32.
    assert predicted_input_shape(480, 640, PIPELINE, 32) == (800, 1088)
    assert predicted_input_shape(640, 480, PIPELINE, 32) == (1088, 800)
    assert predicted_input_shape(480, 640, [dict(type='Resize', scale=(320, 256), keep_ratio=False)], 1) == (256, 320)
    assert predicted_input_shape(480, 640, [dict(type='RandomResize', scale=(1333, 800))], 32) is None


def test_draw_prefers_the_most_common_shape():
    a, b, c = (800, 1088), (1088, 800), (800, 800)
    shapes = [c] * 3 + [a] * 10 + [b] * 5
    logs = []
    ids = draw_calibration_ids(shapes, 8, seed=0, mode='common', log=logs.append)
    assert len(set(ids)) == 8 and {shapes[i] for i in ids} == {a} and not logs
    assert ids == draw_calibration_ids(shapes, 8, seed=0, mode='common')   # seeded
    assert ids != draw_calibration_ids(shapes, 8, seed=1, mode='common')
    ids = draw_calibration_ids(shapes, 12, seed=0, mode='common', log=logs.append)
    assert {shapes[i] for i in ids} == {a, b} and 'only 10 image(s)' in logs[0]
    ids = draw_calibration_ids(shapes, 18, seed=0, mode='largest')
    assert sorted(ids) == list(range(18))
    logs.clear()
    ids = draw_calibration_ids([None] * 5, 2, seed=0, mode='common', log=logs.append)
    assert len(ids) == 2 and 'no plain Resize' in logs[0]
