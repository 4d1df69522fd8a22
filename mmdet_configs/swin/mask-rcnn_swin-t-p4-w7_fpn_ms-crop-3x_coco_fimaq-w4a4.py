# mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py
# quantized to W4A4 with FIMA-Q (32 calibration + 256 reconstruction images from train2017):
#   python tools/quant_test.py THIS_CONFIG CONVERTED_CHECKPOINT   (see docs/coco.md)
_base_ = ['./mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', '../_base_/quant/fimaq_w4a4.py']
