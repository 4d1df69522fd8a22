# Quantization preset: method calib, W8A8, the whole detector (published COCO protocol).
# Use as a base:  _base_ = ['../mask-rcnn_swin-tiny_fpn_shapes.py', '../../_base_/quant/calib_w8a8.py']
quant = dict(method='calib', w_bits=8, a_bits=8)
