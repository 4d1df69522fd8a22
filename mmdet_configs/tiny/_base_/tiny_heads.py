# The RoI heads' widths and the RPN/RoI sampling and test settings shared by the tiny
# detectors (Swin and ViT, Mask R-CNN and Cascade): FPN width 64, 7 shape classes, at most
# 200 proposals and 100 detections per image at test time (sized for CPU evaluation).
tiny_num_classes = 7
tiny_rpn_head = dict(in_channels=64, feat_channels=64)
tiny_roi_extractor = dict(out_channels=64)
tiny_mask_head = dict(num_convs=2, in_channels=64, conv_out_channels=64,
                      num_classes=tiny_num_classes)
tiny_rpn_train = dict(sampler=dict(num=128))
tiny_rpn_proposal = dict(nms_pre=1000, max_per_img=300)
tiny_test_cfg = dict(
    rpn=dict(nms_pre=500, max_per_img=200),
    rcnn=dict(max_per_img=100))
# Mask R-CNN's RoI head and training sampling (the Cascade config builds its own stages).
tiny_mask_rcnn_roi_head = dict(
    bbox_roi_extractor=tiny_roi_extractor,
    bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=tiny_num_classes),
    mask_roi_extractor=tiny_roi_extractor,
    mask_head=tiny_mask_head)
tiny_mask_rcnn_train_cfg = dict(rpn=tiny_rpn_train, rpn_proposal=tiny_rpn_proposal,
                                rcnn=dict(sampler=dict(num=128)))
