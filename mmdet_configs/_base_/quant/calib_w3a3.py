# Quantization preset: method calib, W3A3, the whole detector (published COCO protocol).
# Use as a base:  _base_ = ['../mask-rcnn_swin-tiny_fpn_shapes.py', '../../_base_/quant/calib_w3a3.py']
quant = dict(method='calib', w_bits=3, a_bits=3)
