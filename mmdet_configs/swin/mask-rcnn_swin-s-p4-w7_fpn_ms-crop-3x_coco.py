# Mask R-CNN, Swin-S backbone, FPN, 3x schedule with multi-scale crop training, on COCO:
# the architecture of the Swin-Transformer-Object-Detection release (its checkpoint
# mask_rcnn_swin_small_patch4_window7.pth: box AP 48.5, mask AP 43.3, 69 M parameters).
#
# Swin-S = Swin-T (mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py, whose header lists the
# source of every other detail) with depths 2-2-18-2; embed_dim 96, heads 3-6-12-24, window 7,
# ape False, patch_norm True, drop_path_rate 0.2 are unchanged
#   -> release configs/swin/mask_rcnn_swin_small_patch4_window7_mstrain_480-800_adamw_3x_coco.py;
#      mmdet::swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py makes the same change
#      (plus AMP training, as the release did with apex; irrelevant for PTQ).
_base_ = ['./mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py']

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth'  # noqa
model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
