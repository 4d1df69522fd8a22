# Tiny Swin Mask R-CNN for the embedded shapes benchmark: the module types of Swin-T Mask R-CNN
# (mmdet SwinTransformer: PatchEmbed, ShiftWindowMSA/WindowMSA, FFN, PatchMerging; FPN; RPN;
# RoI box and mask heads), scaled down to train and evaluate on a 2-core CPU.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/shapes_instance.py',
    './_base_/tiny_schedule.py',
    './_base_/tiny_swin_fpn.py',
    './_base_/tiny_heads.py',
]
model = dict(
    backbone={{_base_.tiny_backbone}},
    neck={{_base_.tiny_neck}},
    rpn_head={{_base_.tiny_rpn_head}},
    roi_head={{_base_.tiny_mask_rcnn_roi_head}},
    train_cfg={{_base_.tiny_mask_rcnn_train_cfg}},
    test_cfg={{_base_.tiny_test_cfg}})
