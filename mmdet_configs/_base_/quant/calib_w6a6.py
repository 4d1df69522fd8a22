# Quantization preset: method calib, W6A6, the whole detector (published COCO protocol).
# Use as a base:  _base_ = ['../mask-rcnn_swin-tiny_fpn_shapes.py', '../../_base_/quant/calib_w6a6.py']
quant = dict(method='calib', w_bits=6, a_bits=6)
