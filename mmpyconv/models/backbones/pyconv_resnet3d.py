"""PyConvResNet3d and PyConvHGResNet3d: the PyConv backbones for video, in mmaction2's I3D style.

The 2D networks (:mod:`.pyconv_resnet`) inflated in time, as mmaction2's ``ResNet3d`` inflates
ResNet: the same arch table, stage plans, module names and shortcut design, with

* a stem of ``conv1_kernel`` (default ``(3, 7, 7)``, I3D uses ``(5, 7, 7)``) at stride
  ``(conv1_stride_t, 2, 2)``, then an optional temporal max-pool (``pool1_stride_t``); the
  paper's stem has no spatial max-pool, so there is none here either;
* per block, an inflate flag (``inflate``: one int per stage, or one per block): an inflated
  bottleneck has a ``(3, 1, 1)`` first conv (``inflate_style='3x1x1'``) or ``(3, k, k)``
  pyramid levels (``'3x3x3'``); an inflated basic block has ``(3, k, k)`` levels; every other
  conv is ``(1, k, k)``;
* ``temporal_strides`` on each stage's first block (its PyConv and its shortcut) and a temporal
  max-pool after the first stage (``with_pool2``), as mmaction2's;
* 3D convs and norms (``conv_cfg=dict(type='Conv3d')``, ``norm_cfg=dict(type='BN3d')``) and
  ``PyConv3d`` pyramids.

2D ImageNet weights (ours, or the authors' files in their own layout) load as mmaction2 users
write it, ``pretrained='x.pth'`` with ``pretrained2d=True`` or ``init_cfg=dict(type='Pretrained',
checkpoint='x.pth')``: every 2D kernel is repeated over time and divided by its temporal size
(:func:`inflate_state_dict`), so a clip of identical frames gives the 2D network's features.
"""
from typing import Dict, List, Mapping, MutableMapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.registry import MODELS

from .pretrained import check_fit, model_zoo_reason
from .pyconv_blocks import PyConvBottleneck
from .pyconv_resnet import PyConvHGResNet, PyConvResNet

__all__ = ['PyConvResNet3d', 'PyConvHGResNet3d', 'inflate_state_dict']

ConfigType = Dict
Inflate = Union[int, Sequence[Union[int, Sequence[int]]]]


def inflate_state_dict(state: MutableMapping[str, torch.Tensor],
                       own: Mapping[str, Sequence[int]], prefix: str = '') -> List[str]:
    """Inflate, in place, the 2D kernels of ``state`` that a 3D module holds as 3D ones.

    A key under ``prefix`` whose tensor is ``(O, I, k, k)`` where the module (``own``: its
    state-dict shapes, relative to ``prefix``) has ``(O, I, t, k, k)`` becomes the 2D kernel
    repeated ``t`` times over time and divided by ``t``: on a clip of identical frames the 3D
    conv then sums to the 2D conv. Everything else is left as it is.

    Returns:
        list[str]: The keys inflated.
    """
    inflated = []
    for key, shape in own.items():
        full = prefix + key
        value = state.get(full)
        if value is None or len(shape) != 5 or value.dim() != 4:
            continue
        if tuple(value.shape[:2]) != tuple(shape[:2]) or tuple(value.shape[2:]) != tuple(
                shape[3:]):
            continue
        t = shape[2]
        state[full] = value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        inflated.append(full)
    return inflated


def _inflate_pre_hook(module: nn.Module, state_dict: MutableMapping[str, torch.Tensor],
                      prefix: str, *args) -> None:
    """Load-state-dict pre-hook: a 2D checkpoint loads into the 3D backbone, inflated."""
    own = {k: v.shape for k, v in module.state_dict(keep_vars=True).items()}
    inflate_state_dict(state_dict, own, prefix)


def _stage_inflation(inflate: Inflate, stage_blocks: Sequence[int]) -> List[Tuple[bool, ...]]:
    """One flag per block of every stage, from mmaction2's ``inflate`` (an int for all, an int
    per stage, or a sequence per stage with one entry per block)."""
    if isinstance(inflate, int):
        inflate = (inflate, ) * len(stage_blocks)
    if len(inflate) < len(stage_blocks):
        raise ValueError(f'inflate={inflate!r} needs one entry per stage ({len(stage_blocks)})')
    flags = []
    for stage, (entry, blocks) in enumerate(zip(inflate, stage_blocks)):
        entry = (entry, ) * blocks if isinstance(entry, int) else tuple(entry)
        if len(entry) != blocks:
            raise ValueError(f'inflate: stage {stage} has {blocks} blocks, but its pattern '
                             f'{entry} has {len(entry)} entries; give one per block or one int')
        flags.append(tuple(bool(f) for f in entry))
    return flags


@MODELS.register_module()
class PyConvResNet3d(PyConvResNet):
    """PyConvResNet inflated for video (3D convs), as mmaction2's ``ResNet3d`` is for ResNet.

    Args (those of :class:`PyConvResNet` apply, with 3D meanings; and mmaction2's):
        depth (int): 18, 34, 50, 101 or 152.
        pretrained (str, optional): Checkpoint to load, 2D (inflated) or 3D. Default: None.
        pretrained2d (bool): Accepted as mmaction2 users write it; a 2D checkpoint is inflated
            whatever its value, a 3D one loads as it is. Default: True.
        spatial_strides (Sequence[int]): Spatial stride of each stage's first block.
            Default: (2, 2, 2, 2) (the stem has no max-pool, see :class:`PyConvResNet`).
        temporal_strides (Sequence[int]): Temporal stride of each stage's first block.
            Default: (1, 1, 1, 1).
        conv1_kernel (Sequence[int]): Stem kernel ``(t, h, w)``. Default: (3, 7, 7).
        conv1_stride_t (int): Temporal stride of the stem. Default: 1.
        pool1_stride_t (int): Temporal max-pool (kernel = stride) after the stem. Default: 1,
            none.
        with_pool2 (bool): Temporal max-pool by 2 after the first stage. Default: True.
        inflate (int | Sequence): Which blocks are inflated. Default: 1 (all).
        inflate_style (str): ``'3x1x1'`` or ``'3x3x3'`` (see the module docstring).
            Default: '3x1x1'.
        pyconv_cfg (dict): Config of the pyramids. Default: ``dict(type='PyConv3d')``.
        conv_cfg (dict): Default: ``dict(type='Conv3d')``.
        norm_cfg (dict): Default: ``dict(type='BN3d', requires_grad=True)``.

    Returns a tensor when one stage is output (mmaction2's heads take one), else a tuple.

    Example:
        >>> import torch
        >>> m = PyConvResNet3d(depth=50)
        >>> tuple(m(torch.rand(1, 3, 8, 64, 64)).shape)
        (1, 2048, 4, 2, 2)
    """
    single_output_as_tensor = True
    conv_layer = 'Conv3d'

    def __init__(self,
                 depth: int,
                 pretrained: Optional[str] = None,
                 pretrained2d: bool = True,
                 in_channels: int = 3,
                 num_stages: int = 4,
                 stem_channels: int = 64,
                 base_channels: Optional[int] = None,
                 expansion: Optional[int] = None,
                 out_indices: Sequence[int] = (3, ),
                 spatial_strides: Sequence[int] = (2, 2, 2, 2),
                 temporal_strides: Sequence[int] = (1, 1, 1, 1),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 conv1_kernel: Sequence[int] = (3, 7, 7),
                 conv1_stride_t: int = 1,
                 pool1_stride_t: int = 1,
                 with_pool2: bool = True,
                 inflate: Inflate = 1,
                 inflate_style: str = '3x1x1',
                 pyconv_kernels=None,
                 pyconv_groups=None,
                 pyconv_cfg: ConfigType = dict(type='PyConv3d'),
                 frozen_stages: int = -1,
                 conv_cfg: ConfigType = dict(type='Conv3d'),
                 norm_cfg: ConfigType = dict(type='BN3d', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = False,
                 non_local: Sequence = (0, 0, 0, 0),
                 style: str = 'pytorch',
                 init_cfg: Optional[Union[ConfigType, List[ConfigType]]] = None):
        name = type(self).__name__
        reason = model_zoo_reason(pretrained, 'pretrained', name, depth)
        if reason:
            raise ValueError(reason)
        if any(any(n) if isinstance(n, (list, tuple)) else n for n in non_local):
            raise ValueError(f'non_local: {name} has no non-local blocks; drop non_local')
        if inflate_style not in ('3x1x1', '3x3x3'):
            raise ValueError(f"inflate_style={inflate_style!r}: choose '3x1x1' or '3x3x3'")
        if len(temporal_strides) != num_stages:
            raise ValueError(f'temporal_strides {tuple(temporal_strides)} needs one entry per '
                             f'stage (num_stages={num_stages})')
        if len(conv1_kernel) != 3 or conv1_kernel[0] % 2 == 0:
            raise ValueError(f'conv1_kernel={tuple(conv1_kernel)} must be (t, h, w) with an odd '
                             't, e.g. (5, 7, 7)')
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('give the checkpoint either as init_cfg or as `pretrained`, '
                                 'not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        self.pretrained = pretrained
        self.pretrained2d = pretrained2d
        self.temporal_strides = tuple(temporal_strides)
        self.conv1_kernel = tuple(conv1_kernel)
        self.conv1_stride_t = conv1_stride_t
        self.pool1_stride_t = pool1_stride_t
        self.with_pool2 = with_pool2
        self.inflate_style = inflate_style
        if depth in self.arch_settings:  # else the 2D constructor says which depths there are
            self.stage_inflation = _stage_inflation(inflate,
                                                    self.arch_settings[depth][1][:num_stages])
        super().__init__(
            depth, in_channels=in_channels, stem_channels=stem_channels,
            base_channels=base_channels, expansion=expansion, num_stages=num_stages,
            strides=spatial_strides, dilations=dilations, out_indices=out_indices,
            pyconv_kernels=pyconv_kernels, pyconv_groups=pyconv_groups, pyconv_cfg=pyconv_cfg,
            frozen_stages=frozen_stages, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
            norm_eval=norm_eval, with_cp=with_cp, zero_init_residual=zero_init_residual,
            style=style, init_cfg=init_cfg)
        self.register_load_state_dict_pre_hook(_inflate_pre_hook)
        self.pool1 = (nn.MaxPool3d((pool1_stride_t, 1, 1), (pool1_stride_t, 1, 1))
                      if pool1_stride_t > 1 else nn.Identity())
        self.pool2 = (nn.MaxPool3d((2, 1, 1), (2, 1, 1))
                      if with_pool2 and num_stages > 1 else nn.Identity())

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        t, h, w = self.conv1_kernel
        self.conv1 = build_conv_layer(
            self.conv_cfg, in_channels, stem_channels, kernel_size=self.conv1_kernel,
            stride=(self.conv1_stride_t, 2, 2), padding=((t - 1) // 2, (h - 1) // 2,
                                                         (w - 1) // 2), bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = build_activation_layer(self.act_cfg)

    def block_args(self, index: int, args: ConfigType) -> ConfigType:
        """3D strides and dilations, and the temporal kernels the inflate flag gives."""
        stage = len(self.res_layers)
        inflated = self.stage_inflation[stage][index]
        t_stride = self.temporal_strides[stage] if index == 0 else 1
        args = dict(args, stride=(t_stride, args['stride'], args['stride']),
                    dilation=(1, args['dilation'], args['dilation']))
        bottleneck = issubclass(self.block, PyConvBottleneck)
        t_pyconv = 3 if inflated and (self.inflate_style == '3x3x3' or not bottleneck) else 1
        args['pyconv_cfg'] = dict(args['pyconv_cfg'], temporal_kernel_size=t_pyconv)
        if bottleneck:
            args['conv1_kernel_size'] = (3 if inflated and self.inflate_style == '3x1x1' else 1,
                                         1, 1)
        return args

    def shortcut_pool(self, stride: int, dilation: int) -> Optional[nn.Module]:
        """Max-pool ``(1, 3, 3)`` at the stage's spatial and temporal stride."""
        t_stride = self.temporal_strides[len(self.res_layers)]
        if stride > 1 or dilation > 1 or t_stride > 1:
            return nn.MaxPool3d((1, 3, 3), (t_stride, stride, stride), (0, 1, 1))
        return None

    def check_pretrained(self) -> None:
        """Refuse another network's checkpoint, 2D ones judged once inflated."""
        found = self.pretrained_checkpoint()
        if found is not None and found[0]:
            check_fit(self, *found, depth=self.depth, transform=inflate_state_dict)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """``x``: ``(N, C, T, H, W)`` clips."""
        x = self.pool1(self.relu(self.norm1(self.conv1(x))))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
            if i == 0:
                x = self.pool2(x)
        return self.outputs(outs)


@MODELS.register_module()
class PyConvHGResNet3d(PyConvResNet3d):
    """PyConvHGResNet inflated for video; arguments as :class:`PyConvResNet3d`, depth 50, 101
    or 152, the arch table and stage plans of :class:`PyConvHGResNet`."""
    arch_settings = PyConvHGResNet.arch_settings
    default_base_channels = PyConvHGResNet.default_base_channels
    default_expansion = PyConvHGResNet.default_expansion
    default_pyconv_groups = PyConvHGResNet.default_pyconv_groups
