# Mask R-CNN, Swin-T backbone, FPN, 3x schedule with multi-scale crop training, on COCO:
# the architecture of the Swin-Transformer-Object-Detection release (its checkpoint
# mask_rcnn_swin_tiny_patch4_window7.pth: box AP 46.0, mask AP 41.6, 48 M parameters), in
# mmdet 3.3 terms. Convert that checkpoint with tools/convert_ckpt.py (docs/coco.md).
#
# Where each detail comes from (release = github.com/SwinTransformer/Swin-Transformer-
# Object-Detection, configs/swin/mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py
# on top of configs/_base_/models/mask_rcnn_swin_fpn.py; both match mmdet 3.3's configs below):
#   backbone  embed_dim 96, depths 2-2-6-2, heads 3-6-12-24, window_size 7, mlp_ratio 4,
#             qkv_bias True, qk_scale None, ape False, patch_norm True, drop_rate 0,
#             attn_drop_rate 0, drop_path_rate 0.2, out_indices 0-3 (a LayerNorm norm0..3 on
#             each output)             -> release config; mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py
#                                         sets the same values (ape = use_abs_pos_embed, default False)
#   neck      FPN in 96/192/384/768 -> 256, 5 outputs            -> release = mmdet 3.3
#   rpn_head  RPNHead 256, anchors scale 8, ratios 0.5/1/2, strides 4-64, L1 loss
#                                                                -> release mask_rcnn_swin_fpn.py = mmdet::_base_/models/mask-rcnn_r50_fpn.py
#   roi_head  StandardRoIHead; Shared2FCBBoxHead (1024, 80 classes, class-specific regression,
#             reg_class_agnostic False, stds 0.1/0.1/0.2/0.2); FCNMaskHead 4 convs 256, RoIAlign
#             7 (box) / 14 (mask), sampling_ratio 0     -> release = mmdet::_base_/models/mask-rcnn_r50_fpn.py
#   test_cfg  rpn nms_pre 1000, max_per_img 1000, nms 0.7; rcnn score_thr 0.05, nms 0.5,
#             max_per_img 100, mask_thr_binary 0.5   -> release = mmdet::_base_/models/mask-rcnn_r50_fpn.py
#   test pipeline  resize 1333x800 keep ratio, pad to 32, ImageNet mean/std, BGR->RGB
#                  -> release configs/_base_/datasets/coco_instance.py = mmdet::_base_/datasets/coco_instance.py
#                     (+ data_preprocessor of mmdet's model base)
#   training  AdamW lr 1e-4 wd 0.05, 36 epochs, steps 27/33, multi-scale 480-800 + crop
#             -> release config = mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py
#             (the release trained with apex AMP; training settings do not matter for PTQ)
# Not from the release: the evaluator is fimaq's CocoDetMetric (mmdet's CocoMetric with COCO's
# standard maxDets 1/10/100, the definition of the published AP), and data_root below.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py']

custom_imports = dict(imports=['fimaq.engine'], allow_failed_imports=False)

# COCO 2017 with the standard layout (docs/coco.md):
#   <data_root>/annotations/instances_train2017.json, instances_val2017.json,
#   <data_root>/train2017/*.jpg (calibration images), <data_root>/val2017/*.jpg (evaluation).
# Override: set the environment variable COCO_ROOT (COCO_ROOT=/datasets/coco python tools/...),
# or edit this line. (A config that inherits this one and only sets data_root changes nothing:
# mmengine resolves the paths below when it reads this file.)
data_root = '{{$COCO_ROOT:data/coco}}/'

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoDetMetric',
    ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
