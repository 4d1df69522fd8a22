# Tiny Swin Cascade Mask R-CNN for the embedded shapes benchmark: the tiny Swin backbone and
# FPN of mask-rcnn_swin-tiny_fpn_shapes.py with mmdet's three-stage cascade RoI head.
# Training starts from the trained tiny Mask R-CNN (backbone, neck and RPN carry over),
# as a COCO cascade starts from ImageNet weights.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    './_base_/shapes_instance.py',
    './_base_/tiny_schedule.py',
    './_base_/tiny_swin_fpn.py',
    './_base_/tiny_heads.py',
]
num_classes = {{_base_.tiny_num_classes}}


def _stage(stds):
    return dict(
        type='Shared2FCBBoxHead',
        in_channels=64,
        fc_out_channels=128,  # three heads; keeps the checkpoint under 20 MB
        roi_feat_size=7,
        num_classes=num_classes,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=stds),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


model = dict(
    backbone={{_base_.tiny_backbone}},
    neck={{_base_.tiny_neck}},
    rpn_head={{_base_.tiny_rpn_head}},
    roi_head=dict(
        bbox_roi_extractor={{_base_.tiny_roi_extractor}},
        bbox_head=[
            _stage([0.1, 0.1, 0.2, 0.2]),
            _stage([0.05, 0.05, 0.1, 0.1]),
            _stage([0.033, 0.033, 0.067, 0.067]),
        ],
        mask_roi_extractor={{_base_.tiny_roi_extractor}},
        mask_head={{_base_.tiny_mask_head}}),
    train_cfg=dict(
        rpn={{_base_.tiny_rpn_train}},
        rpn_proposal={{_base_.tiny_rpn_proposal}},
        rcnn=[
            dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=t, neg_iou_thr=t,
                               min_pos_iou=t, match_low_quality=False, ignore_iof_thr=-1),
                 sampler=dict(type='RandomSampler', num=128, pos_fraction=0.25,
                              neg_pos_ub=-1, add_gt_as_proposals=True),
                 mask_size=28, pos_weight=-1, debug=False)
            for t in (0.5, 0.6, 0.7)
        ]),
    test_cfg={{_base_.tiny_test_cfg}})
load_from = 'checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth'

# Shorter schedule than the Mask R-CNN's: backbone, neck and RPN start trained.
max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-6),
]
