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
num_classes = {{_base_.tiny_num_classes}}
model = dict(
    backbone={{_base_.tiny_backbone}},
    neck={{_base_.tiny_neck}},
    rpn_head={{_base_.tiny_rpn_head}},
    roi_head=dict(
        bbox_roi_extractor={{_base_.tiny_roi_extractor}},
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor={{_base_.tiny_roi_extractor}},
        mask_head={{_base_.tiny_mask_head}}),
    train_cfg=dict(
        rpn={{_base_.tiny_rpn_train}},
        rpn_proposal={{_base_.tiny_rpn_proposal}},
        rcnn=dict(sampler=dict(num=128))),
    test_cfg={{_base_.tiny_test_cfg}})
