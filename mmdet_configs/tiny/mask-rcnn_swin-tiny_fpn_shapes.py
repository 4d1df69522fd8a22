# Tiny Swin Mask R-CNN for the embedded shapes benchmark: the module types of Swin-T Mask R-CNN
# (mmdet SwinTransformer: PatchEmbed, ShiftWindowMSA/WindowMSA, FFN, PatchMerging; FPN; RPN;
# RoI box and mask heads), scaled down to train and evaluate on a 2-core CPU.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/shapes_instance.py',
    './_base_/tiny_schedule.py',
    './_base_/tiny_swin_fpn.py',
]
num_classes = 7
model = dict(
    backbone={{_base_.tiny_backbone}},
    neck={{_base_.tiny_neck}},
    rpn_head={{_base_.tiny_rpn_head}},
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(num_convs=2, in_channels=64, conv_out_channels=64,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(max_per_img=100)))
