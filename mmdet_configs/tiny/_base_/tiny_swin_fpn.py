# The tiny Swin backbone and FPN shared by the tiny detectors: the module types of
# Swin-T (mmdet SwinTransformer) with width 32, depths 2-2-2-2, heads 1-2-4-8, window 7.
# _delete_: replaces the ResNet backbone of the mmdet model base instead of merging into it.
tiny_backbone = dict(
    _delete_=True,
    type='SwinTransformer',
    embed_dims=32,
    depths=[2, 2, 2, 2],
    num_heads=[1, 2, 4, 8],
    window_size=7,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.1,
    patch_norm=True,
    out_indices=(0, 1, 2, 3),
    with_cp=False,
    convert_weights=False,
    init_cfg=None)
tiny_neck = dict(in_channels=[32, 64, 128, 256], out_channels=64, num_outs=5)
