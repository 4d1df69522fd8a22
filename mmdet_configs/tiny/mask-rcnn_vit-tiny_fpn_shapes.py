# Tiny ViT Mask R-CNN for the embedded shapes benchmark: a plain timm VisionTransformer
# (patch 16, no class token, position embedding interpolated to each input's token grid)
# with ViTDet's simple feature pyramid (fimaq.models.vit_backbone.TimmViTPyramid), then the
# FPN, RPN and RoI box/mask heads of the tiny Swin Mask R-CNN. Sized so that a training step
# (4 images of 320x256) costs about what the tiny Swin's does on a CPU.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/shapes_instance.py',
    './_base_/tiny_schedule.py',
    './_base_/tiny_heads.py',
]
custom_imports = dict(imports=['fimaq.engine', 'fimaq.models.vit_backbone'],
                      allow_failed_imports=False)
embed_dim = 128
model = dict(
    backbone=dict(
        _delete_=True,
        type='TimmViTPyramid',
        arch=None,                 # or a timm name, e.g. 'vit_tiny_patch16_224' (+ checkpoint)
        img_size=(256, 320),       # (H, W): the position embedding's grid is 16x20 tokens
        patch_size=16,
        embed_dim=embed_dim,
        depth=8,
        num_heads=4,
        mlp_ratio=4,
        qkv_bias=True,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        checkpoint=None),
    # Pyramid widths: C/4 (stride 4), C/2 (8), C (16), C (32), as in ViTDet.
    neck=dict(in_channels=[embed_dim // 4, embed_dim // 2, embed_dim, embed_dim],
              out_channels=64, num_outs=5),
    rpn_head={{_base_.tiny_rpn_head}},
    roi_head={{_base_.tiny_mask_rcnn_roi_head}},
    train_cfg={{_base_.tiny_mask_rcnn_train_cfg}},
    test_cfg={{_base_.tiny_test_cfg}})
# The tiny Swin's optimizer (AdamW 4e-4, tiny_schedule.py) over 2000 iterations; no weight
# decay on the position embedding (timm's no_weight_decay) and the norms.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.)}))
max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=500)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=200, end=max_iters, eta_min=1e-6),
]
