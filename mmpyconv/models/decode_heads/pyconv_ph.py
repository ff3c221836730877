"""PyConvPH: the PyConv parsing head of PyConvSegNet (Duta et al., arXiv 2006.11538).

Two branches read the last backbone stage and are merged by a 3x3 conv:

* local: 1x1 conv (reduces the input ``local_reduction`` times) -> PyConv -> 1x1 conv;
* global: adaptive average pooling to ``bins x bins`` -> 1x1 conv -> PyConv -> 1x1 conv,
  upsampled back to the input size;
* merge: concatenation -> 3x3 conv to ``channels``; then mmseg's dropout and 1x1 classifier.

Every conv is followed by norm and activation. The PyConvs have kernels 3/5/7/9 and groups
1/4/8/16 by default and split their width equally over the levels, as the original head does.

This module imports mmseg: ``import mmpyconv`` never loads it. Segmentation configs load it with
``custom_imports=dict(imports=['mmpyconv', 'mmpyconv.models.decode_heads'])`` (the configs of
``configs/pyconvseg`` also import ``mmpyconv.datasets.seg_transforms`` for ``CheckSegMap``).
"""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor

__all__ = ['PyConvPH']

ConfigType = Dict


@MODELS.register_module()
class PyConvPH(BaseDecodeHead):
    """PyConv parsing head (PyConvSegNet's head).

    Args:
        local_reduction (int): The local branch's first 1x1 conv maps ``in_channels`` to
            ``in_channels // local_reduction``; its PyConv keeps that width. Default: 4.
        local_channels (int): Output width of the local branch. Default: 512.
        global_channels (int): Width of every conv of the global branch. Default: 512.
        bins (int): The global branch pools its input to ``bins x bins``. Default: 9.
        pyconv_kernels (Sequence[int]): Kernel of every pyramid level of both PyConvs.
            Default: (3, 5, 7, 9).
        pyconv_groups (Sequence[int]): Groups of every pyramid level. Default: (1, 4, 8, 16).
        pyconv_cfg (dict): Config of the PyConv layers. Default: ``dict(type='PyConv2d')``.
        merge_kernel (int): Kernel of the conv merging both branches into ``channels``.
            Default: 3.
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead` arguments: ``in_channels``
            (the head reads one feature map: one stage chosen by ``in_index``, or several
            concatenated by ``input_transform='resize_concat'``), ``channels`` (width
            before the classifier, 256 in the paper), ``num_classes``, ``dropout_ratio``,
            ``conv_cfg``, ``norm_cfg`` (unlike mmseg's heads, BN when not given: the head is
            defined with a norm after every conv), ``act_cfg``, ``align_corners`` (also used to
            upsample the global branch; the original network uses True), ``loss_decode``...

    Example:
        >>> import torch
        >>> head = PyConvPH(in_channels=2048, channels=256, num_classes=150)
        >>> sum(p.numel() for n, p in head.named_parameters() if 'conv_seg' not in n)
        8452608
        >>> head.eval()([torch.rand(1, 2048, 17, 17)]).shape
        torch.Size([1, 150, 17, 17])
    """

    def __init__(self,
                 local_reduction: int = 4,
                 local_channels: int = 512,
                 global_channels: int = 512,
                 bins: int = 9,
                 pyconv_kernels: Sequence[int] = (3, 5, 7, 9),
                 pyconv_groups: Sequence[int] = (1, 4, 8, 16),
                 pyconv_cfg: ConfigType = dict(type='PyConv2d'),
                 merge_kernel: int = 3,
                 **kwargs):
        kwargs.setdefault('norm_cfg', dict(type='BN', requires_grad=True))
        super().__init__(**kwargs)
        if not isinstance(self.in_channels, int):
            raise TypeError(
                f'PyConvPH reads one feature map, got in_channels={self.in_channels!r}: select '
                'one stage with in_index, or concatenate several with '
                "input_transform='resize_concat'")
        if local_reduction < 1 or self.in_channels % local_reduction:
            raise ValueError(
                f'local_reduction={local_reduction} must be a positive divisor of '
                f'in_channels={self.in_channels}')
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f'bins must be a positive int, got {bins!r}')
        if merge_kernel < 1 or merge_kernel % 2 == 0:
            raise ValueError(f'merge_kernel must be a positive odd int, got {merge_kernel}')
        num_levels = len(pyconv_kernels)
        for width, what in ((self.in_channels // local_reduction, 'in_channels // local_reduction'),
                            (global_channels, 'global_channels')):
            if width % num_levels:
                raise ValueError(
                    f'the head\'s PyConvs split their width equally over their {num_levels} '
                    f'levels (kernels {list(pyconv_kernels)}), but {what} = {width}; use a '
                    f'width divisible by {num_levels}')
        for key in ('kernel_size', 'groups', 'level_channels', 'padding'):
            if key in pyconv_cfg:
                raise ValueError(f'pyconv_cfg sets {key!r}, which the head decides: use its '
                                 'pyconv_kernels / pyconv_groups instead')
        self.local_reduction = local_reduction
        self.local_channels = local_channels
        self.global_channels = global_channels
        self.bins = bins
        self.pyconv_kernels = tuple(pyconv_kernels)
        self.pyconv_groups = tuple(pyconv_groups)

        def conv(in_channels: int, out_channels: int, kernel: int = 1) -> ConvModule:
            return ConvModule(in_channels, out_channels, kernel, padding=kernel // 2,
                              conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                              act_cfg=self.act_cfg)

        def pyconv(channels: int) -> ConvModule:
            # Equal widths per level, as the original head has (not the backbone's split).
            widths = [channels // num_levels] * num_levels
            return ConvModule(channels, channels, self.pyconv_kernels, padding='same',
                              groups=self.pyconv_groups,
                              conv_cfg=dict(pyconv_cfg, level_channels=widths),
                              norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)

        local_mid = self.in_channels // local_reduction
        self.local_context = nn.Sequential(
            conv(self.in_channels, local_mid), pyconv(local_mid),
            conv(local_mid, local_channels))
        self.global_context = nn.Sequential(
            nn.AdaptiveAvgPool2d(bins), conv(self.in_channels, global_channels),
            pyconv(global_channels), conv(global_channels, global_channels))
        self.merge_context = conv(local_channels + global_channels, self.channels, merge_kernel)

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        """Features before the classifier: (N, ``channels``, H, W) at the stage's size."""
        x = self._transform_inputs(inputs)
        local = self.local_context(x)
        pooled = self.global_context(x)
        # F.interpolate, not mmseg's resize: that warns whenever align_corners=True and the
        # sizes are not n*k+1 apart, which pooled bins never are.
        glob = F.interpolate(pooled, size=x.shape[2:], mode='bilinear',
                             align_corners=self.align_corners)
        return self.merge_context(torch.cat([local, glob], dim=1))

    def forward(self, inputs: List[Tensor]) -> Tensor:
        return self.cls_seg(self._forward_feature(inputs))
