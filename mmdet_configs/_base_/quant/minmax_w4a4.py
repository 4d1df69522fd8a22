# Quantization preset: method minmax, W4A4, the whole detector (published COCO protocol).
# Use as a base:  _base_ = ['../mask-rcnn_swin-tiny_fpn_shapes.py', '../../_base_/quant/minmax_w4a4.py']
quant = dict(method='minmax', w_bits=4, a_bits=4)
