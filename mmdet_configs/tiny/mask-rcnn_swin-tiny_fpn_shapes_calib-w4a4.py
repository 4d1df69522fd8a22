# The tiny Swin Mask R-CNN quantized to W4A4 with stage A (scale search + LayerNorm
# reparameterization): `python tools/quant_test.py THIS_CONFIG checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth`
_base_ = ['./mask-rcnn_swin-tiny_fpn_shapes.py', '../_base_/quant/calib_w4a4.py']
