# Quantization preset: method fimaq (stage A calib, then stage B block reconstruction with
# FIMA-Q's diagonal-plus-low-rank Fisher loss), W8A8, the whole detector (published COCO
# protocol): 32 stage A calibration images and 256 stage B images from the train split.
# Use as a base:  _base_ = ['./mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', '../_base_/quant/fimaq_w8a8.py']
quant = dict(method='fimaq', w_bits=8, a_bits=8, calib_images=32, recon_images=256)
