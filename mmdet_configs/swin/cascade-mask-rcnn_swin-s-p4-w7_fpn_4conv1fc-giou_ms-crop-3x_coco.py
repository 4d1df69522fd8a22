# Cascade Mask R-CNN, Swin-S backbone, FPN, 4conv1fc box heads with GIoU loss, 3x schedule
# with multi-scale crop training, on COCO: the architecture of the Swin-Transformer-Object-
# Detection release (its checkpoint cascade_mask_rcnn_swin_small_patch4_window7.pth: box AP
# 51.9, mask AP 45.0, 107 M parameters).
#
# Swin-S = the Swin-T cascade (cascade-mask-rcnn_swin-t-p4-w7_fpn_4conv1fc-giou_ms-crop-3x_coco.py,
# whose header lists the source of every other detail) with depths 2-2-18-2; embed_dim 96,
# heads 3-6-12-24, window 7, ape False, patch_norm True, drop_path_rate 0.2 are unchanged
#   -> release configs/swin/cascade_mask_rcnn_swin_small_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco.py
_base_ = ['./cascade-mask-rcnn_swin-t-p4-w7_fpn_4conv1fc-giou_ms-crop-3x_coco.py']

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth'  # noqa
model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
