"""The PyConv operator (Duta et al., "Pyramidal Convolution", arXiv 2006.11538) as a conv layer.

:class:`PyConv2d` and its video counterpart :class:`PyConv3d` own the parameters (one
``nn.Conv2d`` / ``nn.Conv3d`` per pyramid level, so that state-dict keys are
``levels.{i}.weight``) and their :class:`~mmpyconv.ops.plan.PyConvPlan`; the forward pass is one
lookup in the implementation table of :mod:`mmpyconv.ops.dispatch`. Both take the arguments code
written for a plain conv passes (mmcv's ``ConvModule`` and ``build_conv_layer`` among them) and
initialise their levels as ``ConvModule`` initialises a plain conv. Everything they share lives
in :class:`_PyConvNd`; the two differ only in the plan they build and their conv class.
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model.weight_init import kaiming_init
from mmengine.registry import MODELS

from . import dispatch
from .plan import PyConvPlan

__all__ = ['PyConv2d', 'PyConv3d']

IntOrSeq = Union[int, Sequence[int]]
Padding = Union[None, str, int, Sequence]


def _check_padding(padding: Padding, plan: PyConvPlan) -> None:
    """Accept a padding that says what the levels do anyway; refuse any other with a message.

    Accepted: None; ``'same'`` (stride 1, as torch allows it); one int or one pair for all
    levels, or one entry per level, equal to every level's own 'same' padding.
    """
    expected = list(plan.paddings)
    if padding is None:
        return
    if isinstance(padding, str):
        if padding == 'same' and all(s == 1 for s in plan.stride):
            return
        reason = ("'same' is accepted at stride 1 only, as for torch's convs"
                  if padding == 'same' else "the only padding mode by name is 'same'")
        raise ValueError(f'padding={padding!r}: {reason}; leave padding=None, which pads every '
                         'level to keep its kernel centred')
    if isinstance(padding, int):
        matches = all(p == (padding, ) * plan.ndim for p in expected)
    else:
        per_level = [(p, ) * plan.ndim if isinstance(p, int) else tuple(p) for p in padding]
        matches = per_level == expected or (len(padding) == plan.ndim and all(
            p == tuple(padding) for p in expected))
    if not matches:
        shown = [p[0] if len(set(p)) == 1 else p for p in expected]
        raise ValueError(
            f'padding={padding!r} does not match the PyConv levels, which each pad by '
            f'dilation*(k-1)//2 = {shown}; leave padding=None (or give padding=\'same\')')


class _PyConvNd(nn.Module):
    """What :class:`PyConv2d` and :class:`PyConv3d` share: parameters from a plan, the attributes
    code written for a plain conv reads, initialisation, forward through the impl table."""

    _conv = nn.Conv2d

    def _build(self, plan: PyConvPlan, padding: Padding, bias: bool, impl: str) -> None:
        _check_padding(padding, plan)
        self.plan = plan
        self.impl = impl
        self.in_channels = plan.in_channels
        self.out_channels = plan.out_channels
        # The attributes code written for nn.Conv2d/3d reads (mmcv's ConvModule does), per level.
        self.kernel_size = plan.kernels
        self.groups = plan.groups
        self.stride = plan.stride
        self.dilation = plan.dilation
        self.padding = plan.paddings
        self.transposed = False
        self.output_padding = (0, ) * plan.ndim
        self.levels = nn.ModuleList(
            self._conv(plan.in_channels, c, plan.kernel_size(i), stride=plan.stride,
                       padding=plan.padding(i), dilation=plan.dilation, groups=g, bias=bias)
            for i, (g, c) in enumerate(zip(plan.groups, plan.level_channels)))
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming-normal (fan_out, ReLU) weights and zero biases, level by level.

        What mmcv's ``ConvModule`` gives a plain conv; ``ConvModule`` leaves a conv that has its
        own ``init_weights`` alone, so the layer calls this itself when it is built. A
        backbone's or head's ``init_cfg`` (and pretrained weights) apply on top, as usual.
        """
        for level in self.levels:
            kaiming_init(level, mode='fan_out', nonlinearity='relu', bias=0,
                         distribution='normal')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.plan.check_input(x)
        biases = None if self.levels[0].bias is None else [lvl.bias for lvl in self.levels]
        return dispatch.compute(self.impl, self.plan, x, [lvl.weight for lvl in self.levels],
                                biases)

    def extra_repr(self) -> str:
        p = self.plan
        impl = '' if self.impl == 'auto' else f', impl={self.impl!r}'
        temporal = '' if p.ndim == 2 else f', temporal_kernels={list(p.temporal_kernels)}'
        return (f'{p.in_channels}, {p.out_channels}, kernels={list(p.kernels)}{temporal}, '
                f'groups={list(p.groups)}, level_channels={list(p.level_channels)}, '
                f'stride={p.stride}, dilation={p.dilation}{impl}')


@MODELS.register_module()
class PyConv2d(_PyConvNd):
    """2D Pyramidal Convolution, usable wherever a conv layer is.

    One ``nn.Conv2d`` per pyramid level (all reading the same input), outputs concatenated on
    the channel axis in level order. Built directly, by mmcv's
    ``build_conv_layer(dict(type='PyConv2d', ...), in_channels, out_channels, ...)``, or inside
    ``ConvModule(..., conv_cfg=dict(type='PyConv2d', ...))``.

    Args:
        in_channels (int): Input channels.
        out_channels (int | Sequence[int]): Total output width, split over the levels by
            ``level_channels`` or the paper's default split; or one width per level.
        kernel_size (int | Sequence[int]): Odd kernel size of each level.
            Default: (3, 5, 7, 9).
        stride (int | tuple[int, int]): Stride of every level. Default: 1.
        padding (None | str | int | tuple | Sequence): Every level pads by
            ``dilation * (k - 1) // 2``; a padding may be given only if it says the same
            (``'same'`` at stride 1, one int or pair for all levels, or one entry per level), so
            that code written for a plain conv can build a PyConv. Default: None.
        dilation (int | tuple[int, int]): Dilation of every level. Default: 1.
        groups (int | Sequence[int] | None): Groups of each level (an int applies to all).
            Default: None, the paper's (1, 4, 8, 16) truncated to the number of levels.
        bias (bool): Whether each level has a bias. Default: False.
        level_channels (Sequence[int] | None): Explicit width of each level, adding up to
            ``out_channels``. Default: None.
        impl (str): How the layer is computed: ``'reference'``, ``'dense'``, ``'depthwise'``,
            ``'triton'``, ``'nested'`` or ``'auto'`` (see :mod:`mmpyconv.ops.dispatch`). All
            read the same parameters, so checkpoints do not depend on it. Default: 'auto'.

    Example:
        >>> import torch
        >>> m = PyConv2d(64, 64, kernel_size=(3, 5, 7, 9), groups=(1, 4, 8, 16))
        >>> m(torch.rand(2, 64, 56, 56)).shape
        torch.Size([2, 64, 56, 56])
        >>> [lvl.out_channels for lvl in m.levels]
        [16, 16, 16, 16]
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: Union[int, Sequence[int]],
                 kernel_size: IntOrSeq = (3, 5, 7, 9),
                 stride: IntOrSeq = 1,
                 padding: Padding = None,
                 dilation: IntOrSeq = 1,
                 groups: Optional[IntOrSeq] = None,
                 bias: bool = False,
                 level_channels: Optional[Sequence[int]] = None,
                 impl: str = 'auto'):
        super().__init__()
        dispatch.check_impl(impl)
        self._build(
            PyConvPlan.create(in_channels, out_channels, kernel_size, groups, level_channels,
                              stride, dilation), padding, bias, impl)


@MODELS.register_module()
class PyConv3d(_PyConvNd):
    """3D (spatio-temporal) Pyramidal Convolution, for video networks.

    The pyramid is spatial as in :class:`PyConv2d` (kernels 3, 5, 7, 9 growing, depth shrinking
    through groups); each level also spans ``t`` frames, its kernel being ``(t, k, k)``. One
    ``nn.Conv3d`` per level, outputs concatenated on the channel axis in level order; the same
    plan arithmetic (:class:`~mmpyconv.ops.plan.PyConvPlan`), validation, padding rules,
    ``impl`` switch and cost helper (:func:`~mmpyconv.ops.cost.pyconv_cost`) as the 2D layer.
    Built directly, by ``build_conv_layer(dict(type='PyConv3d', ...), ...)`` or inside
    ``ConvModule``.

    Args:
        in_channels (int): Input channels.
        out_channels (int | Sequence[int]): Total output width, or one width per level.
        kernel_size (int | Sequence[int]): Odd spatial kernel size of each level.
            Default: (3, 5, 7, 9).
        temporal_kernel_size (int | Sequence[int]): Odd temporal kernel size, one for every
            level or one per level. Default: 3.
        stride (int | tuple[int, int, int]): Stride of every level, one int or
            ``(temporal, height, width)``. Default: 1.
        padding (None | str | int | tuple | Sequence): As :class:`PyConv2d`: every level pads
            by ``dilation * (k - 1) // 2`` per axis; a padding may be given only if it says the
            same. Default: None.
        dilation (int | tuple[int, int, int]): Dilation of every level. Default: 1.
        groups (int | Sequence[int] | None): Groups of each level. Default: None, the paper's
            (1, 4, 8, 16) truncated to the number of levels.
        bias (bool): Whether each level has a bias. Default: False.
        level_channels (Sequence[int] | None): Explicit width of each level. Default: None.
        impl (str): ``'reference'`` (one grouped conv per level), ``'dense'`` (one dense conv
            over the zero-masked weights), ``'nested'`` (levels merged at nesting groups) or
            ``'auto'`` (see :mod:`mmpyconv.ops.dispatch`; ``'depthwise'`` and ``'triton'`` are
            2D only and say so). Default: 'auto'.

    Example:
        >>> import torch
        >>> m = PyConv3d(64, 64, kernel_size=(3, 5, 7, 9), temporal_kernel_size=3)
        >>> m(torch.rand(1, 64, 8, 28, 28)).shape
        torch.Size([1, 64, 8, 28, 28])
        >>> [tuple(lvl.kernel_size) for lvl in m.levels]
        [(3, 3, 3), (3, 5, 5), (3, 7, 7), (3, 9, 9)]
    """

    _conv = nn.Conv3d

    def __init__(self,
                 in_channels: int,
                 out_channels: Union[int, Sequence[int]],
                 kernel_size: IntOrSeq = (3, 5, 7, 9),
                 temporal_kernel_size: IntOrSeq = 3,
                 stride: IntOrSeq = 1,
                 padding: Padding = None,
                 dilation: IntOrSeq = 1,
                 groups: Optional[IntOrSeq] = None,
                 bias: bool = False,
                 level_channels: Optional[Sequence[int]] = None,
                 impl: str = 'auto'):
        super().__init__()
        dispatch.check_impl(impl)
        self._build(
            PyConvPlan.create(in_channels, out_channels, kernel_size, groups, level_channels,
                              stride, dilation, temporal_kernel_size), padding, bias, impl)
