# Quantization preset: method minmax, W6A6, the whole detector (published COCO protocol).
# Use as a base:  _base_ = ['../mask-rcnn_swin-tiny_fpn_shapes.py', '../../_base_/quant/minmax_w6a6.py']
quant = dict(method='minmax', w_bits=6, a_bits=6)
