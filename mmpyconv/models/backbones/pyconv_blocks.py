"""The residual blocks of PyConvResNet and PyConvHGResNet.

* :class:`PyConvBasicBlock` (depth 18/34): PyConv -> norm -> act -> 1x1 conv -> norm, the
  authors' default basic block, expansion 1;
* :class:`PyConvBottleneck` (depth 50/101/152): 1x1 -> PyConv (strided) -> 1x1 expand, expansion
  4 (PyConvHGResNet: 2).

Both take what mmpretrain's and mmdet's ResNet blocks take where it applies to a PyConv block:
stochastic depth (``drop_path_rate``) and, in the bottleneck, mmdet's plugins
(``after_conv1`` / ``after_conv2`` / ``after_conv3``).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath, build_plugin_layer
from mmengine.model import BaseModule

__all__ = ['PyConvBasicBlock', 'PyConvBottleneck', 'PLUGIN_POSITIONS']

ConfigType = Dict
PLUGIN_POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')


def _build_pyconv(pyconv_cfg: ConfigType, in_channels: int, out_channels: int,
                  kernels: Sequence[int], groups: Sequence[int], stride: Union[int, Sequence[int]],
                  dilation: Union[int, Sequence[int]]) -> nn.Module:
    """A block's PyConv: the stage plan, no bias unless ``pyconv_cfg`` asks for one."""
    for key in ('kernel_size', 'groups', 'stride', 'dilation'):
        if key in pyconv_cfg:
            raise ValueError(
                f'pyconv_cfg sets {key!r}, which the backbone decides per stage: use the '
                'backbone\'s pyconv_kernels / pyconv_groups / strides / dilations instead')
    cfg = dict(kernel_size=tuple(kernels), groups=tuple(groups), bias=False)
    cfg.update(pyconv_cfg)
    return build_conv_layer(cfg, in_channels, out_channels, stride=stride, dilation=dilation)


def _mid_channels(out_channels: int, expansion: int) -> int:
    if out_channels % expansion:
        raise ValueError(f'out_channels={out_channels} is not divisible by expansion={expansion}')
    return out_channels // expansion


class _PyConvBlock(BaseModule):
    """What both residual blocks share: shortcut, activation, stochastic depth, checkpointing,
    norm names."""

    def __init__(self, with_cp: bool, act_cfg: ConfigType, downsample: Optional[nn.Module],
                 drop_path_rate: float, init_cfg: Optional[ConfigType]):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.downsample = downsample
        self.relu = build_activation_layer(act_cfg)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def _add_norm(self, norm_cfg: ConfigType, channels: int, postfix: int) -> str:
        name, norm = build_norm_layer(norm_cfg, channels, postfix=postfix)
        self.add_module(name, norm)
        return name

    @property
    def last_norm(self) -> nn.Module:
        """The norm before the residual addition (zeroed by ``zero_init_residual``)."""
        return getattr(self, self.norm_names[-1])

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        def _inner(x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.drop_path(self.residual(x)) + identity

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner, x, use_reentrant=False)
        else:
            out = _inner(x)
        return self.relu(out)


class PyConvBasicBlock(_PyConvBlock):
    """The original's default basic block: PyConv -> norm -> act -> 1x1 conv -> norm.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (int): ``out_channels / mid_channels``. Default: 1.
        stride (int): Stride of the PyConv. Default: 1.
        dilation (int): Dilation of the PyConv. Default: 1.
        pyconv_kernels (Sequence[int]): Kernel of each pyramid level. Default: (3, ).
        pyconv_groups (Sequence[int]): Groups of each pyramid level. Default: (1, ).
        downsample (nn.Module, optional): Shortcut projection. Default: None.
        with_cp (bool): Use gradient checkpointing. Default: False.
        drop_path_rate (float): Stochastic depth: probability of dropping the residual branch
            of a sample in training. Default: 0.
        pyconv_cfg (dict): Config of the PyConv layer. Default: ``dict(type='PyConv2d')``.
        conv_cfg (dict, optional): Config of the 1x1 conv. Default: None (Conv2d).
        norm_cfg (dict): Norm config. Default: ``dict(type='BN')``.
        act_cfg (dict): Activation config. Default: ``dict(type='ReLU', inplace=True)``.
        init_cfg (dict, optional): Initialization config. Default: None.
    """
    default_expansion = 1

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expansion: int = 1,
                 stride: int = 1,
                 dilation: int = 1,
                 pyconv_kernels: Sequence[int] = (3, ),
                 pyconv_groups: Sequence[int] = (1, ),
                 downsample: Optional[nn.Module] = None,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.0,
                 pyconv_cfg: ConfigType = dict(type='PyConv2d'),
                 conv_cfg: Optional[ConfigType] = None,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='ReLU', inplace=True),
                 init_cfg: Optional[ConfigType] = None):
        super().__init__(with_cp, act_cfg, downsample, drop_path_rate, init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expansion = expansion
        mid_channels = _mid_channels(out_channels, expansion)
        self.conv1 = _build_pyconv(pyconv_cfg, in_channels, mid_channels, pyconv_kernels,
                                   pyconv_groups, stride, dilation)
        self.norm_names = [self._add_norm(norm_cfg, mid_channels, 1)]
        self.conv2 = build_conv_layer(conv_cfg, mid_channels, out_channels, 1, bias=False)
        self.norm_names.append(self._add_norm(norm_cfg, out_channels, 2))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(getattr(self, self.norm_names[0])(self.conv1(x)))
        return getattr(self, self.norm_names[1])(self.conv2(out))


class PyConvBottleneck(_PyConvBlock):
    """Bottleneck with a PyConv in the middle: 1x1 -> PyConv (strided) -> 1x1 expand.

    Args: as :class:`PyConvBasicBlock`; ``expansion`` defaults to 4 (PyConvHGResNet uses 2),
    and:
        plugins (list[dict], optional): mmdet's ResNet plugins of this block: each
            ``dict(cfg=dict(type=...), position='after_conv1' | 'after_conv2' |
            'after_conv3')`` (``cfg`` may hold a ``postfix``), built by mmcv's
            ``build_plugin_layer`` (ContextBlock, GeneralizedAttention, NonLocal2d, ...) and
            applied in order after that conv (after its norm and activation; after the last
            norm for ``after_conv3``). Default: None.
        conv1_kernel_size (int | Sequence[int]): Kernel of the first conv, padded to keep the
            size; a video backbone inflates it over time, e.g. ``(3, 1, 1)``. Default: 1.
    """
    default_expansion = 4

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expansion: int = 4,
                 stride: int = 1,
                 dilation: int = 1,
                 pyconv_kernels: Sequence[int] = (3, ),
                 pyconv_groups: Sequence[int] = (1, ),
                 downsample: Optional[nn.Module] = None,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.0,
                 plugins: Optional[List[ConfigType]] = None,
                 pyconv_cfg: ConfigType = dict(type='PyConv2d'),
                 conv_cfg: Optional[ConfigType] = None,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='ReLU', inplace=True),
                 conv1_kernel_size: Union[int, Sequence[int]] = 1,
                 init_cfg: Optional[ConfigType] = None):
        super().__init__(with_cp, act_cfg, downsample, drop_path_rate, init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expansion = expansion
        mid_channels = _mid_channels(out_channels, expansion)
        padding = (conv1_kernel_size - 1) // 2 if isinstance(conv1_kernel_size, int) else tuple(
            (k - 1) // 2 for k in conv1_kernel_size)
        self.conv1 = build_conv_layer(conv_cfg, in_channels, mid_channels, conv1_kernel_size,
                                      padding=padding, bias=False)
        self.norm_names = [self._add_norm(norm_cfg, mid_channels, 1)]
        self.conv2 = _build_pyconv(pyconv_cfg, mid_channels, mid_channels, pyconv_kernels,
                                   pyconv_groups, stride, dilation)
        self.norm_names.append(self._add_norm(norm_cfg, mid_channels, 2))
        self.conv3 = build_conv_layer(conv_cfg, mid_channels, out_channels, 1, bias=False)
        self.norm_names.append(self._add_norm(norm_cfg, out_channels, 3))
        widths = dict(after_conv1=mid_channels, after_conv2=mid_channels,
                      after_conv3=out_channels)
        self.plugin_names = {position: [] for position in PLUGIN_POSITIONS}
        for plugin in plugins or ():
            position = plugin.get('position')
            if position not in PLUGIN_POSITIONS:
                raise ValueError(f'plugin position {position!r}: choose one of '
                                 f'{list(PLUGIN_POSITIONS)}')
            cfg = dict(plugin['cfg'])
            name, layer = build_plugin_layer(cfg, postfix=cfg.pop('postfix', ''),
                                             in_channels=widths[position])
            if hasattr(self, name):
                raise ValueError(f'two plugins named {name!r} in one block: give them '
                                 "different postfixes (cfg=dict(..., postfix='1'))")
            self.add_module(name, layer)
            self.plugin_names[position].append(name)

    def _plugins(self, x: torch.Tensor, position: str) -> torch.Tensor:
        for name in self.plugin_names[position]:
            x = getattr(self, name)(x)
        return x

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        norm1, norm2, norm3 = (getattr(self, n) for n in self.norm_names)
        out = self._plugins(self.relu(norm1(self.conv1(x))), 'after_conv1')
        out = self._plugins(self.relu(norm2(self.conv2(out))), 'after_conv2')
        return self._plugins(norm3(self.conv3(out)), 'after_conv3')
