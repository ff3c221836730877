"""PyConvSSD's head: SSD's per-level predictions read a PyConv of that level's feature map.

In SSD every feature level predicts class scores and box offsets with a 3x3 conv. Here each
level first applies a PyConv (a kernel pyramid; norm and ReLU after it), then two 1x1 convs
predict the scores and offsets from it. The pyramid of a level depends on its map size: the
largest kernels (up to 9x9) on the high-resolution maps, fewer and smaller kernels where the map
is too small to hold them (:func:`ssd_pyconv_kernels`; a 1x1 map gets a 1x1 kernel, which is
all a 3x3 kernel computes there). The 1x1 predictors keep the PyConv's levels apart from the
anchors: a prediction width (anchors x classes) need not divide into pyramid levels and groups.

This module imports mmdet: ``import mmpyconv`` never loads it. Detection configs load it with
``custom_imports=dict(imports=['mmpyconv', 'mmpyconv.models.dense_heads'])``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS
from torch import Tensor

from ...ops import default_groups, default_split

__all__ = ['PyConvSSDHead', 'ssd_pyconv_kernels']

ConfigType = Dict
_PYRAMID = (3, 5, 7, 9)


def ssd_pyconv_kernels(map_sizes: Sequence[int]) -> Tuple[Tuple[int, ...], ...]:
    """The pyramid of each level for feature maps of these sizes: the kernels 3, 5, 7, 9 that
    fit in the map (a 1x1 kernel where none does).

    >>> ssd_pyconv_kernels((38, 19, 10, 5, 3, 1))  # SSD300
    ((3, 5, 7, 9), (3, 5, 7, 9), (3, 5, 7, 9), (3, 5), (3,), (1,))
    """
    return tuple(tuple(k for k in _PYRAMID if k <= size) or (1, ) for size in map_sizes)


# Feature map sizes of PyConvResNet-50 (stages 2-4) and SSDNeck's extra levels, 300 and 512 px.
SSD300_KERNELS = ssd_pyconv_kernels((38, 19, 10, 5, 3, 1))


@MODELS.register_module()
class PyConvSSDHead(SSDHead):
    """SSD head whose per-level prediction layers are PyConvs (see the module docstring).

    Args:
        pyconv_kernels (Sequence[Sequence[int]]): Kernel sizes of each level's PyConv, one
            entry per feature level. Default: SSD300's with PyConvResNet-50
            (:func:`ssd_pyconv_kernels` of 38, 19, 10, 5, 3, 1).
        pyconv_groups (Sequence[Sequence[int]], optional): Groups of each level's PyConv.
            Default: None, the paper's (1, 4, 8, 16) truncated to the level's kernels.
        feat_channels (int): Output width of every level's PyConv, split over its kernels as
            the paper splits a layer. Default: 256.
        pyconv_cfg (dict): Config of the PyConv layers. Default: ``dict(type='PyConv2d')``.
        norm_cfg (dict, optional): Norm after each PyConv. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): Activation after each PyConv. Default: ``dict(type='ReLU')``.
        **kwargs: :class:`mmdet.models.dense_heads.SSDHead`'s arguments (``num_classes``,
            ``in_channels``, ``anchor_generator``, ``bbox_coder``, ``train_cfg``,
            ``test_cfg``...); ``stacked_convs`` and ``use_depthwise`` are SSDHead's own tower and
            not taken here.

    Example:
        >>> import torch
        >>> head = PyConvSSDHead(
        ...     num_classes=3, in_channels=(512, 1024, 2048, 512, 256, 256),
        ...     anchor_generator=dict(
        ...         type='SSDAnchorGenerator', scale_major=False, input_size=300,
        ...         basesize_ratio_range=(0.15, 0.9), strides=[8, 16, 32, 64, 100, 300],
        ...         ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]]))
        >>> feats = [torch.rand(1, c, s, s) for c, s in zip(head.in_channels,
        ...                                                  (38, 19, 10, 5, 3, 1))]
        >>> scores, boxes = head.eval()(feats)
        >>> [tuple(s.shape[1:]) for s in scores][:2]
        [(16, 38, 38), (24, 19, 19)]
    """

    def __init__(self,
                 pyconv_kernels: Sequence[Sequence[int]] = SSD300_KERNELS,
                 pyconv_groups: Optional[Sequence[Sequence[int]]] = None,
                 feat_channels: int = 256,
                 pyconv_cfg: ConfigType = dict(type='PyConv2d'),
                 norm_cfg: Optional[ConfigType] = dict(type='BN'),
                 act_cfg: Optional[ConfigType] = dict(type='ReLU'),
                 init_cfg: Optional[ConfigType] = None,
                 **kwargs):
        for key in ('stacked_convs', 'use_depthwise'):
            if kwargs.get(key):
                raise ValueError(f'{key}: PyConvSSDHead predicts from one PyConv per level, not '
                                 "from SSDHead's conv tower; drop it")
        for key in ('kernel_size', 'groups', 'level_channels', 'padding'):
            if key in pyconv_cfg:
                raise ValueError(f'pyconv_cfg sets {key!r}, which the head decides per level: '
                                 'use pyconv_kernels / pyconv_groups / feat_channels')
        self.pyconv_kernels = tuple(tuple(k) for k in pyconv_kernels)
        self.pyconv_groups = (tuple(default_groups(len(k)) for k in self.pyconv_kernels)
                              if pyconv_groups is None else
                              tuple(tuple(g) for g in pyconv_groups))
        self.pyconv_cfg = pyconv_cfg
        if init_cfg is None:
            # SSD's Xavier for the predictors; the PyConvs keep their own (Kaiming) init.
            xavier = dict(type='Xavier', distribution='uniform', bias=0)
            init_cfg = dict(xavier, override=[dict(xavier, name='cls_convs'),
                                              dict(xavier, name='reg_convs')])
        super().__init__(feat_channels=feat_channels, norm_cfg=norm_cfg, act_cfg=act_cfg,
                         init_cfg=init_cfg, **kwargs)

    def _init_layers(self) -> None:
        levels = len(self.in_channels)
        for what, plan in (('pyconv_kernels', self.pyconv_kernels),
                           ('pyconv_groups', self.pyconv_groups),
                           ('anchor generator levels', self.num_base_priors)):
            if len(plan) != levels:
                raise ValueError(f'{what} has {len(plan)} entries, but the head has {levels} '
                                 f'feature levels (in_channels={tuple(self.in_channels)})')
        self.pyconvs = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        for channels, priors, kernels, groups in zip(self.in_channels, self.num_base_priors,
                                                     self.pyconv_kernels, self.pyconv_groups):
            widths = default_split(self.feat_channels, len(kernels))
            self.pyconvs.append(
                ConvModule(channels, self.feat_channels, kernels, padding='same', groups=groups,
                           conv_cfg=dict(self.pyconv_cfg, level_channels=widths),
                           norm_cfg=self.norm_cfg, act_cfg=self.act_cfg))
            self.cls_convs.append(
                nn.Conv2d(self.feat_channels, priors * self.cls_out_channels, 1))
            self.reg_convs.append(nn.Conv2d(self.feat_channels, priors * 4, 1))

    def forward(self, x: Tuple[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Class scores and box offsets of every level (as SSDHead returns them)."""
        cls_scores, bbox_preds = [], []
        for feat, pyconv, cls_conv, reg_conv in zip(x, self.pyconvs, self.cls_convs,
                                                    self.reg_convs):
            feat = pyconv(feat)
            cls_scores.append(cls_conv(feat))
            bbox_preds.append(reg_conv(feat))
        return cls_scores, bbox_preds
