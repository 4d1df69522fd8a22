"""A timm VisionTransformer as an mmdet backbone: ViTDet's simple feature pyramid for FPN.

Register it in a config with
``custom_imports = dict(imports=['fimaq.engine', 'fimaq.models.vit_backbone'])`` and use
``backbone=dict(type='TimmViTPyramid', ...)``. The plain ViT yields one token map at stride
``patch_size`` (16); the pyramid derives four maps from it as ViTDet does (Li et al.,
"Exploring Plain Vision Transformer Backbones for Object Detection", ECCV 2022):

- stride 4: ConvTranspose2d 2×2/2 (C → C/2), LayerNorm2d, GELU, ConvTranspose2d 2×2/2 (→ C/4);
- stride 8: ConvTranspose2d 2×2/2 (C → C/2);
- stride 16: the token map itself (C);
- stride 32: MaxPool 2×2/2 (C), rounding up so that the map covers odd token grids;

then a LayerNorm2d on every level (ViTDet normalises inside its pyramid convs; mmdet's Swin
normalises every output level), so that the FPN and its input quantizers see unit-scale maps
from every level, not the unnormalised deconvolution outputs.
"""
from __future__ import annotations

import math
import os.path as osp
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

# Settings the detector backbone imposes on the timm model, whatever the architecture says.
_FORCED = dict(num_classes=0, global_pool='', class_token=False, reg_tokens=0, fc_norm=False,
               dynamic_img_size=True, pos_embed='learn')
_MAX_CACHED_GRIDS = 32   # interpolated position embeddings kept (one per token grid)


@MODELS.register_module()
class TimmViTPyramid(BaseModule):
    """timm ``VisionTransformer`` (ViT/DeiT family) + ViTDet's simple feature pyramid.

    Args:
        arch: a timm model name (e.g. ``'vit_small_patch16_224'``, ``'deit_tiny_patch16_224'``)
            built with ``timm.create_model(arch, pretrained=False, ...)``; ``None`` builds
            ``VisionTransformer`` from the explicit arguments alone.
        img_size: (H, W) (or an int) the position embedding is stored for; other input
            sizes get it interpolated (bicubic), cached per token grid when no gradient is
            needed. Set it to the most common padded input size.
        patch_size, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate,
        init_values: the ViT's own settings; ``None`` keeps the architecture's (or timm's
            default). ``init_values`` enables LayerScale (DeiT-III).
        final_norm: apply the ViT's last LayerNorm to the token map before the pyramid
            (ViTDet omits it; kept by default so that a pretrained ViT's output statistics
            are unchanged and the FPN's per-tensor input quantizers see normalised tokens).
        out_indices: which of the four pyramid levels (strides 4, 8, 16, 32) to return.
        out_norm: a LayerNorm2d on every returned level (see the module doc).
        checkpoint: a local timm checkpoint (``.pth``/``.pt``/``.bin``/``.safetensors``
            state dict with timm's key names, optionally under ``'model'``/``'state_dict'``)
            loaded by :meth:`init_weights`. Nothing is downloaded; a missing file is an error
            naming the path.
        vit_kwargs: any further keyword arguments for timm's ``VisionTransformer`` (except
            those a detector backbone needs fixed: no class/register token, no head,
            ``dynamic_img_size``; see ``_FORCED``).

    No class (or register) token: detection reads only the spatial tokens, as ViTDet does.
    A class token has no place in the token map the pyramid reshapes; kept inside attention
    it would be one global token whose key/value join every image's per-head operand ranges
    (the quantizers of the attention matmuls) and whose position embedding does not
    interpolate with the grid. Pretrained checkpoints lose their class token and its
    position-embedding entry when loaded.
    """

    def __init__(self,
                 arch: Optional[str] = None,
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: Optional[int] = None,
                 embed_dim: Optional[int] = None,
                 depth: Optional[int] = None,
                 num_heads: Optional[int] = None,
                 mlp_ratio: Optional[float] = None,
                 qkv_bias: Optional[bool] = None,
                 drop_path_rate: float = 0.0,
                 init_values: Optional[float] = None,
                 final_norm: bool = True,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True,
                 checkpoint: Optional[str] = None,
                 vit_kwargs: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        given = dict(patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                     num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                     init_values=init_values)
        kwargs = dict(vit_kwargs or {})
        kwargs.update({k: v for k, v in given.items() if v is not None})
        kwargs.update(img_size=img_size, drop_path_rate=drop_path_rate, final_norm=final_norm)
        if kwargs.get('patch_drop_rate'):
            raise ValueError('TimmViTPyramid: patch_drop_rate drops tokens, which breaks the '
                             'token grid')
        kwargs.update(_FORCED)
        if arch is None:
            self.vit = VisionTransformer(**kwargs)
        else:
            import timm
            self.vit = timm.create_model(arch, pretrained=False, **kwargs)
        if not isinstance(self.vit, VisionTransformer) or self.vit.num_prefix_tokens:
            raise TypeError(f'TimmViTPyramid: {arch!r} is not a plain timm VisionTransformer '
                            f'(got {type(self.vit).__name__}); use a ViT/DeiT architecture')
        self.arch, self.checkpoint = arch, checkpoint
        self.patch_size = tuple(self.vit.patch_embed.patch_size)
        self.grid_size = tuple(self.vit.patch_embed.grid_size)
        self.out_indices = tuple(out_indices)
        if not self.out_indices or not set(self.out_indices) <= {0, 1, 2, 3}:
            raise ValueError(f'TimmViTPyramid: out_indices {out_indices} must be among 0..3')

        dim = self.vit.embed_dim
        if dim % 4:
            raise ValueError(f'TimmViTPyramid: embed_dim {dim} must be divisible by 4')
        self.out_channels = [dim // 4, dim // 2, dim, dim]
        self.up4 = nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, 2, 2), LayerNorm2d(dim // 2),
                                 nn.GELU(), nn.ConvTranspose2d(dim // 2, dim // 4, 2, 2))
        self.up2 = nn.ConvTranspose2d(dim, dim // 2, 2, 2)
        self.down2 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.out_norms = nn.ModuleList(
            LayerNorm2d(self.out_channels[i]) if out_norm else nn.Identity()
            for i in self.out_indices)
        self._pos_cache: dict = {}

    # -- position embedding -------------------------------------------------------------
    def pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        """The position embedding on a ``grid`` of tokens, ``[1, h, w, C]`` (bicubic)."""
        pos = self.vit.pos_embed
        gh, gw = self.grid_size
        if tuple(grid) == (gh, gw):
            return pos.view(1, gh, gw, -1)
        cacheable = not (torch.is_grad_enabled() and pos.requires_grad)
        weights = (pos.data_ptr(), pos._version, pos.device, pos.dtype)   # changes on any update
        key = (tuple(grid),) + weights
        if cacheable and key in self._pos_cache:
            return self._pos_cache[key]
        out = F.interpolate(pos.view(1, gh, gw, -1).permute(0, 3, 1, 2).float(), size=grid,
                            mode='bicubic', align_corners=False)
        out = out.permute(0, 2, 3, 1).to(pos.dtype)
        if cacheable:
            fresh = {k: v for k, v in self._pos_cache.items() if k[1:] == weights}
            if len(fresh) >= _MAX_CACHED_GRIDS:
                fresh.clear()
            fresh[key] = out
            self._pos_cache = fresh
        return out

    # -- forward ------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        ph, pw = self.patch_size
        H, W = x.shape[-2:]
        if H % ph or W % pw:  # the data preprocessor's pad_size_divisor usually did this
            x = F.pad(x, (0, -W % pw, 0, -H % ph))
        vit = self.vit
        x = vit.patch_embed(x)                       # [B, h, w, C] (dynamic_img_size)
        B, h, w, C = x.shape
        x = x + self.pos_embed_for((h, w))
        x = vit.norm_pre(vit.pos_drop(x.reshape(B, h * w, C)))
        for blk in vit.blocks:
            x = blk(x)
        x = vit.norm(x)
        fmap = x.transpose(1, 2).reshape(B, C, h, w)
        levels = (self.up4, self.up2, None, self.down2)
        # Contiguous NCHW, as mmdet backbones return: LayerNorm2d permutes, which leaves
        # channels-last strides that the FPN convs propagate, and mmcv's RoIAlign reads the raw
        # memory as NCHW, i.e. would pool scrambled RoI features.
        return tuple(norm(fmap if levels[i] is None else levels[i](fmap)).contiguous()
                     for i, norm in zip(self.out_indices, self.out_norms))

    # -- weights ------------------------------------------------------------------------
    def init_weights(self) -> None:
        super().init_weights()   # timm's own init of the ViT, PyTorch's of the pyramid
        if self.checkpoint:
            self.load_timm_checkpoint(self.checkpoint)

    def load_timm_checkpoint(self, path: str) -> None:
        """Load timm ViT weights from a local file into ``self.vit`` (see the class doc)."""
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'TimmViTPyramid: checkpoint {path!r} does not exist; timm weights are read '
                'from a local file (no hub download). Fix backbone.checkpoint or set it to None.')
        from timm.models import load_state_dict
        sd = load_state_dict(path, device='cpu')
        sd = self._adapt_state_dict(sd, path)
        own = self.vit.state_dict()
        missing = [k for k in own if k not in sd]
        ignored = sorted(k for k in sd if k not in own)
        if [k for k in missing if not k.startswith('norm.')]:
            raise KeyError(f'TimmViTPyramid: checkpoint {path} lacks {len(missing)} ViT '
                           f'weights, e.g. {missing[:5]}; is it a timm ViT/DeiT state dict?')
        self.vit.load_state_dict(sd, strict=False)
        print_log(f'TimmViTPyramid: loaded {len(own) - len(missing)} ViT tensors from {path}'
                  + (f'; kept initial {missing}' if missing else '')
                  + (f'; ignored {ignored}' if ignored else ''), logger='current')

    def _adapt_state_dict(self, sd: dict, path: str) -> dict:
        """Drop class/register/distillation tokens and the head; fit pos_embed to our grid."""
        sd = {k: v for k, v in sd.items()
              if k not in ('cls_token', 'reg_token', 'dist_token')
              and not k.startswith(('head.', 'head_dist.', 'fc_norm.', 'attn_pool.'))}
        if 'pos_embed' in sd:
            pos = sd['pos_embed']
            n = pos.shape[1]
            side = None
            for prefix in sorted({0, 1, 2} | {n - round(math.sqrt(n)) ** 2}):
                if 0 <= prefix < n and round(math.sqrt(n - prefix)) ** 2 == n - prefix:
                    side = round(math.sqrt(n - prefix))
                    break
            if side is None:
                raise ValueError(f'TimmViTPyramid: pos_embed of {path} has {n} tokens, not a '
                                 'square grid plus class/register tokens')
            grid = pos[:, n - side * side:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            if (side, side) != self.grid_size:
                grid = F.interpolate(grid.float(), size=self.grid_size, mode='bicubic',
                                     align_corners=False).to(pos.dtype)
            sd['pos_embed'] = grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])
        return sd
