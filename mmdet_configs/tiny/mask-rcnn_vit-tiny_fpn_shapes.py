# Tiny ViT Mask R-CNN for the embedded shapes benchmark: a plain timm VisionTransformer
# (patch 16, no class token, position embedding interpolated to each input's token grid)
# with ViTDet's simple feature pyramid (fimaq.models.vit_backbone.TimmViTPyramid), then as in
# ViTDet a GroupNorm FPN and normalised RoI heads (4conv-1fc box head, mask head with GN
# convs; tiny_heads.py), the RPN and widths of the tiny Swin Mask R-CNN. With the tiny Swin's
# plain heads the RoI heads collapse (mask-head ReLUs die, mask loss ~ln 2, AP 0), with or
# without transformer blocks. Sized so that a training step (4 images of 320x256) costs
# about what the tiny Swin's does on a CPU.
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
              out_channels=64, num_outs=5, norm_cfg={{_base_.tiny_norm_cfg}}),
    rpn_head={{_base_.tiny_rpn_head}},
    roi_head={{_base_.tiny_vitdet_roi_head}},
    train_cfg={{_base_.tiny_mask_rcnn_train_cfg}},
    test_cfg={{_base_.tiny_test_cfg}})
# The tiny Swin's schedule (tiny_schedule.py: AdamW 4e-4, 4000 iterations); no weight decay
# on the position embedding (timm's no_weight_decay) and the norms.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.)}))
