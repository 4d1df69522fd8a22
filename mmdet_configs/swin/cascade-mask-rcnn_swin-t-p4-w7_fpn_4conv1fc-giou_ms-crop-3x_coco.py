# Cascade Mask R-CNN, Swin-T backbone, FPN, 4conv1fc box heads with GIoU loss, 3x schedule
# with multi-scale crop training, on COCO: the architecture of the Swin-Transformer-Object-
# Detection release (its checkpoint cascade_mask_rcnn_swin_tiny_patch4_window7.pth: box AP 50.4,
# mask AP 43.7, 86 M parameters), in mmdet 3.3 terms. mmdet 3.3 ships no Swin cascade config,
# so this one starts from our Swin-T Mask R-CNN (backbone, FPN, data, schedule, test_cfg:
# see mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py for their sources) and turns it into the
# release's cascade.
#
# Where each detail comes from (release = configs/swin/cascade_mask_rcnn_swin_tiny_patch4_window7_
# mstrain_480-800_giou_4conv1f_adamw_3x_coco.py on top of configs/_base_/models/cascade_mask_rcnn_swin_fpn.py):
#   backbone  as the Mask R-CNN's: embed_dim 96, depths 2-2-6-2, heads 3-6-12-24, window 7,
#             ape False, patch_norm True, drop_path_rate 0.2                -> release config
#   detector  CascadeRCNN; CascadeRoIHead, 3 stages, stage_loss_weights 1/0.5/0.25
#                                                  -> release base = mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py
#   box heads ConvFCBBoxHead with num_shared_convs 4, num_shared_fcs 1 (= mmdet's
#             Shared4Conv1FCBBoxHead: four 3x3 convs 256 + SyncBN + ReLU, one fc 1024),
#             80 classes, class-specific regression (reg_class_agnostic False: fc_reg has 320
#             outputs), reg_decoded_bbox True, GIoULoss weight 10, stage stds 0.1/0.1/0.2/0.2,
#             0.05/0.05/0.1/0.1, 0.033/0.033/0.067/0.067                    -> release config
#   SyncBN    kept as in the release. Single-process runs need no change: mmengine's Runner
#             reverts SyncBN to BatchNorm when not distributed (Runner.wrap_model ->
#             revert_sync_batchnorm), and torch's SyncBatchNorm in eval mode does not sync.
#   mask head one FCNMaskHead (4 convs 256), shared config for the 3 stages (3 sets of weights),
#             RoIAlign 14; box RoIAlign 7, sampling_ratio 0      -> release base = mmdet cascade base
#   rpn_head  SmoothL1Loss beta 1/9 (training only)                 -> release base = mmdet cascade base
#   train_cfg rpn allowed_border 0, rpn_proposal nms_pre 2000 / max_per_img 2000, rcnn IoU
#             thresholds 0.5/0.6/0.7                            -> release base = mmdet cascade base
#   test_cfg  rpn nms_pre 1000, max_per_img 1000, nms 0.7; rcnn score_thr 0.05, nms 0.5,
#             max_per_img 100, mask_thr_binary 0.5  -> release base = mmdet Mask R-CNN/cascade bases
_base_ = ['./mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py']


def _bbox_head(stds):
    return dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


def _rcnn_train(iou):
    return dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                      match_low_quality=False, ignore_iof_thr=-1),
        sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                     add_gt_as_proposals=True),
        mask_size=28,
        pos_weight=-1,
        debug=False)


model = dict(
    type='CascadeRCNN',
    rpn_head=dict(
        loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    # bbox_roi_extractor, mask_roi_extractor and mask_head come from the Mask R-CNN base and
    # equal the cascade base's; CascadeRoIHead builds one mask head per stage from the dict.
    roi_head=dict(
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_head=[
            _bbox_head([0.1, 0.1, 0.2, 0.2]),
            _bbox_head([0.05, 0.05, 0.1, 0.1]),
            _bbox_head([0.033, 0.033, 0.067, 0.067]),
        ]),
    train_cfg=dict(
        rpn=dict(allowed_border=0),
        rpn_proposal=dict(nms_pre=2000, max_per_img=2000),
        rcnn=[_rcnn_train(0.5), _rcnn_train(0.6), _rcnn_train(0.7)]))
