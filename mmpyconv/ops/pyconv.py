"""Pyramidal Convolution (PyConv), Duta et al., arXiv 2006.11538.

A PyConv layer is a pyramid of parallel convolutions over one input: level ``i`` has a square
kernel ``k_i``, ``g_i`` groups and ``c_i`` output channels; the level outputs are concatenated
along the channel axis. Every level pads by ``dilation * (k_i - 1) // 2`` so that all levels keep
the same output size at any dilation (the original code padded by ``k_i // 2``, which is only
right at dilation 1).

This module holds the operator (:class:`PyConv2d`), its plan (:class:`PyConvPlan`: validation,
the paper's default width split) and a cost helper (:func:`pyconv_cost`) that reports parameters
and FLOPs beside a plain ``k x k`` convolution. How a layer is computed (per level, per level
with depthwise rewrites, as one masked dense conv, or by fused Triton kernels) is chosen in
:mod:`mmpyconv.ops.pyconv_dispatch`; every implementation reads the same per-level parameters.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from .pyconv_dense import pyconv2d_dense
from .pyconv_depthwise import pyconv2d_depthwise
from .pyconv_dispatch import check_impl, load_triton_impl, resolve_impl, triton_unavailable_reason

__all__ = ['PyConv2d', 'PyConvPlan', 'default_split', 'pyconv_cost', 'format_cost']

IntOrSeq = Union[int, Sequence[int]]
IntOrPair = Union[int, Tuple[int, int]]

# The paper's split of a layer's width over its pyramid levels, as fractions of the width
# (PyConvResNet: 4 levels 1/4 each; 3 levels 1/4, 1/4, 1/2; 2 levels 1/2 each).
_PAPER_SPLIT = {1: (1, ), 2: (2, 2), 3: (4, 4, 2), 4: (4, 4, 4, 4)}


def default_split(out_channels: int, num_levels: int) -> List[int]:
    """Output channels per level for a total width, as the paper splits it.

    One to four levels follow the paper (``[C]``, ``[C/2]*2``, ``[C/4, C/4, C/2]``,
    ``[C/4]*4``); more levels share the width equally.

    Raises:
        ValueError: if the width does not divide as the split needs.
    """
    if num_levels < 1:
        raise ValueError(f'a PyConv needs at least one level, got {num_levels}')
    divisors = _PAPER_SPLIT.get(num_levels, (num_levels, ) * num_levels)
    if any(out_channels % d for d in divisors):
        lcm = max(divisors)
        raise ValueError(
            f'out_channels={out_channels} cannot be split over {num_levels} PyConv levels '
            f'(the default split needs a multiple of {lcm}); pass a multiple of {lcm} or give '
            f'the width of every level explicitly with level_channels=[...]')
    return [out_channels // d for d in divisors]


def _pair(value: IntOrPair, name: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f'{name} must be a positive int or a pair of positive ints, got {value!r}')
    return pair


def _padding_matches(padding, expected: List[Tuple[int, int]]) -> bool:
    """Whether a given padding (int, (h, w), or one entry per level) is every level's own."""
    if isinstance(padding, int):
        return all(p == (padding, padding) for p in expected)
    padding = tuple(padding)
    per_level = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    if per_level == expected:
        return True
    return len(padding) == 2 and all(p == padding for p in expected)


@dataclass(frozen=True)
class PyConvPlan:
    """The validated shape of a PyConv layer: one entry per pyramid level.

    Build it with :meth:`PyConvPlan.create`, which checks every argument and says what to change.
    """
    in_channels: int
    kernels: Tuple[int, ...]
    groups: Tuple[int, ...]
    level_channels: Tuple[int, ...]
    stride: Tuple[int, int]
    dilation: Tuple[int, int]

    @property
    def num_levels(self) -> int:
        return len(self.kernels)

    @property
    def out_channels(self) -> int:
        return sum(self.level_channels)

    def padding(self, level: int) -> Tuple[int, int]:
        """'Same' padding of a level at the plan's dilation."""
        k = self.kernels[level]
        return tuple(d * (k - 1) // 2 for d in self.dilation)

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        """Spatial output size for an input of ``height x width`` (equal at every level)."""
        k = self.kernels[0]
        pad = self.padding(0)
        return tuple((size + 2 * p - d * (k - 1) - 1) // s + 1 for size, p, d, s in zip(
            (height, width), pad, self.dilation, self.stride))

    @classmethod
    def create(cls,
               in_channels: int,
               out_channels: Union[int, Sequence[int]],
               kernel_size: IntOrSeq = (3, 5, 7, 9),
               groups: Optional[IntOrSeq] = None,
               level_channels: Optional[Sequence[int]] = None,
               stride: IntOrPair = 1,
               dilation: IntOrPair = 1) -> 'PyConvPlan':
        """Validate a PyConv's arguments.

        Args:
            in_channels: input channels, shared by every level.
            out_channels: total output width (split over the levels by ``level_channels`` or,
                if that is None, by :func:`default_split`), or the width of every level.
            kernel_size: kernel size of every level (odd, positive), or one int for one level.
            groups: groups of every level, or one int for all levels. None: 1 per level.
            level_channels: explicit width of every level; must add up to ``out_channels``.
            stride: stride of every level.
            dilation: dilation of every level.
        """
        kernels = (kernel_size, ) if isinstance(kernel_size, int) else tuple(kernel_size)
        if not kernels:
            raise ValueError('kernel_size is empty: a PyConv needs at least one level')
        if groups is None:
            groups = 1
        groups = (groups, ) * len(kernels) if isinstance(groups, int) else tuple(groups)
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')

        if isinstance(out_channels, int):
            total = out_channels
            if level_channels is None:
                widths = tuple(default_split(total, len(kernels)))
            else:
                widths = tuple(level_channels)
                if sum(widths) != total:
                    raise ValueError(
                        f'level_channels={list(widths)} add up to {sum(widths)}, but '
                        f'out_channels={total}: make them add up to the layer\'s width')
        else:
            widths = tuple(out_channels)
            if level_channels is not None and tuple(level_channels) != widths:
                raise ValueError(
                    f'out_channels={list(widths)} is already per level and disagrees with '
                    f'level_channels={list(level_channels)}; give only one of them')

        lengths = {'kernel_size': len(kernels), 'groups': len(groups), 'level_channels': len(widths)}
        if len(set(lengths.values())) != 1:
            raise ValueError(
                'the PyConv per-level lists have different lengths '
                f'({", ".join(f"{k}: {v}" for k, v in lengths.items())}); give one entry per '
                'pyramid level in each')
        for i, (k, g, c) in enumerate(zip(kernels, groups, widths)):
            if not isinstance(k, int) or k <= 0 or k % 2 == 0:
                raise ValueError(
                    f'level {i}: kernel size {k!r} must be a positive odd int (the pyramid is '
                    'centred on each output pixel, e.g. 3, 5, 7, 9)')
            if not isinstance(g, int) or g <= 0:
                raise ValueError(f'level {i}: groups {g!r} must be a positive int')
            if not isinstance(c, int) or c <= 0:
                raise ValueError(f'level {i}: output channels {c!r} must be a positive int')
            if in_channels % g or c % g:
                raise ValueError(
                    f'level {i} (kernel {k}): in_channels={in_channels} and its output '
                    f'channels={c} must both be divisible by its groups={g}; change the groups '
                    'or the widths')
        return cls(in_channels, kernels, groups, widths, _pair(stride, 'stride'),
                   _pair(dilation, 'dilation'))


@MODELS.register_module()
class PyConv2d(nn.Module):
    """2D Pyramidal Convolution, usable wherever a conv layer is.

    One ``nn.Conv2d`` per pyramid level (all reading the same input), outputs concatenated on
    the channel axis in level order. Built directly or by mmcv's
    ``build_conv_layer(dict(type='PyConv2d', ...), in_channels, out_channels, ...)``.

    Args:
        in_channels (int): Input channels.
        out_channels (int | Sequence[int]): Total output width, split over the levels by
            ``level_channels`` or the paper's default split; or one width per level.
        kernel_size (int | Sequence[int]): Odd kernel size of each level.
            Default: (3, 5, 7, 9).
        stride (int | tuple[int, int]): Stride of every level. Default: 1.
        padding (int | tuple | Sequence | None): Must be None (the default) or equal to the
            levels' 'same' padding ``dilation * (k - 1) // 2`` (one int or pair for all levels,
            or one entry per level); accepted so that code written for a plain conv (mmcv's
            ConvModule passes it) can build a PyConv.
        dilation (int | tuple[int, int]): Dilation of every level. Default: 1.
        groups (int | Sequence[int] | None): Groups of each level (an int applies to all).
            Default: None, i.e. the paper's (1, 4, 8, 16) truncated to the number of levels.
        bias (bool): Whether each level has a bias. Default: False.
        level_channels (Sequence[int] | None): Explicit width of each level, adding up to
            ``out_channels``. Default: None.
        impl (str): How the layer is computed: ``'reference'`` (one conv per level, then
            concatenation), ``'dense'`` (one conv over the zero-masked dense weight assembled
            from the level weights), ``'depthwise'`` (per level, one-output-per-group levels as
            a depthwise conv plus a sum, channels_last inside on the CPU), ``'triton'`` (fused
            Triton kernels, CUDA) or ``'auto'`` (the process-wide default of
            :mod:`mmpyconv.ops.pyconv_dispatch`, by default a choice by device, dtype and
            plan). All read the same parameters, so checkpoints do not depend on it.
            Default: 'auto'.

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
                 stride: IntOrPair = 1,
                 padding: Optional[IntOrPair] = None,
                 dilation: IntOrPair = 1,
                 groups: Optional[IntOrSeq] = None,
                 bias: bool = False,
                 level_channels: Optional[Sequence[int]] = None,
                 impl: str = 'auto'):
        super().__init__()
        check_impl(impl)
        if groups is None:
            paper_groups = (1, 4, 8, 16)
            n = 1 if isinstance(kernel_size, int) else len(kernel_size)
            groups = paper_groups[:n] if n <= len(paper_groups) else 1
        plan = PyConvPlan.create(in_channels, out_channels, kernel_size, groups, level_channels,
                                 stride, dilation)
        if padding is not None:
            expected = [plan.padding(i) for i in range(plan.num_levels)]
            if not _padding_matches(padding, expected):
                raise ValueError(
                    f'padding={padding!r} does not match the PyConv levels, which each pad by '
                    f'dilation*(k-1)//2 = {[p[0] if p[0] == p[1] else p for p in expected]}; '
                    'leave padding=None')
        self.plan = plan
        self.impl = impl
        self.in_channels = plan.in_channels
        self.out_channels = plan.out_channels
        # The attributes code written for nn.Conv2d reads (mmcv's ConvModule does), per level.
        self.kernel_size = plan.kernels
        self.groups = plan.groups
        self.stride = plan.stride
        self.dilation = plan.dilation
        self.padding = tuple(plan.padding(i) for i in range(plan.num_levels))
        self.transposed = False
        self.output_padding = (0, 0)
        self.levels = nn.ModuleList(
            nn.Conv2d(plan.in_channels, c, k, stride=plan.stride, padding=plan.padding(i),
                      dilation=plan.dilation, groups=g, bias=bias)
            for i, (k, g, c) in enumerate(zip(plan.kernels, plan.groups, plan.level_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (skipped under torch.jit.trace, where shapes are traced tensors and the test would warn)
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise ValueError(
                f'PyConv2d({self.in_channels}, {self.out_channels}) takes a batch of shape '
                f'(N, {self.in_channels}, H, W), got {tuple(x.shape)}; add the batch axis with '
                'x[None] for one image, or build the layer with the right in_channels')
        impl = resolve_impl(self.impl, self.plan, x)
        if impl == 'reference':
            if len(self.levels) == 1:
                return self.levels[0](x)
            return torch.cat([level(x) for level in self.levels], dim=1)
        weights = [level.weight for level in self.levels]
        biases = None if self.levels[0].bias is None else [level.bias for level in self.levels]
        if impl == 'dense':
            return pyconv2d_dense(x, self.plan, weights, biases)
        if impl == 'depthwise':
            return pyconv2d_depthwise(x, self.plan, weights, biases)
        reason = triton_unavailable_reason(x)
        if reason is not None:
            raise RuntimeError(f'PyConv2d(impl="triton"): {reason}')
        return load_triton_impl().pyconv2d_triton(x, self.plan, weights, biases)

    def extra_repr(self) -> str:
        p = self.plan
        impl = '' if self.impl == 'auto' else f', impl={self.impl!r}'
        return (f'{p.in_channels}, {p.out_channels}, kernels={list(p.kernels)}, '
                f'groups={list(p.groups)}, level_channels={list(p.level_channels)}, '
                f'stride={p.stride}, dilation={p.dilation}{impl}')


def _conv_cost(in_channels: int, out_channels: int, kernel: int, groups: int, bias: bool,
               out_hw: Tuple[int, int]) -> Tuple[int, int]:
    """(params, FLOPs) of one conv.

    FLOPs are multiply-adds of the weights, as mmengine's counter reports them (no bias term).
    """
    weights = out_channels * (in_channels // groups) * kernel * kernel
    return weights + (out_channels if bias else 0), weights * out_hw[0] * out_hw[1]


def pyconv_cost(module_or_plan: Union[PyConv2d, PyConvPlan],
                input_size: Tuple[int, int],
                reference_kernel: int = 3,
                bias: bool = False) -> Dict[str, Dict[str, int]]:
    """Parameters and FLOPs of a PyConv beside a plain ``k x k`` conv of the same shape.

    The plain conv has the same input and output width, stride and dilation, one group, and
    kernel ``reference_kernel`` (3 by default, the conv a PyConv is meant to replace).

    Args:
        module_or_plan: a :class:`PyConv2d` or its :class:`PyConvPlan`.
        input_size: (height, width) of the input.
        reference_kernel: kernel size of the plain conv compared with.
        bias: whether to count biases (taken from the module when a module is given).

    Returns:
        ``{'pyconv': {'params', 'flops'}, 'conv': {'params', 'flops'},
        'levels': [{'kernel', 'groups', 'out_channels', 'params', 'flops'}, ...]}``
    """
    if isinstance(module_or_plan, PyConv2d):
        plan = module_or_plan.plan
        bias = module_or_plan.levels[0].bias is not None
    else:
        plan = module_or_plan
    out_hw = plan.output_size(*input_size)
    levels = []
    for k, g, c in zip(plan.kernels, plan.groups, plan.level_channels):
        params, flops = _conv_cost(plan.in_channels, c, k, g, bias, out_hw)
        levels.append(dict(kernel=k, groups=g, out_channels=c, params=params, flops=flops))
    conv_params, conv_flops = _conv_cost(plan.in_channels, plan.out_channels, reference_kernel, 1,
                                         bias, out_hw)
    return dict(
        pyconv=dict(params=sum(lv['params'] for lv in levels),
                    flops=sum(lv['flops'] for lv in levels)),
        conv=dict(params=conv_params, flops=conv_flops, kernel=reference_kernel),
        levels=levels)


def format_cost(cost: Dict) -> str:
    """A small text table of :func:`pyconv_cost`'s result."""
    rows = [('layer', 'kernel', 'groups', 'out', 'params', 'MFLOPs')]
    for i, lv in enumerate(cost['levels']):
        rows.append((f'level {i}', str(lv['kernel']), str(lv['groups']),
                     str(lv['out_channels']), f"{lv['params']:,}", f"{lv['flops'] / 1e6:.2f}"))
    out_total = sum(lv['out_channels'] for lv in cost['levels'])
    rows.append(('PyConv', '-', '-', str(out_total), f"{cost['pyconv']['params']:,}",
                 f"{cost['pyconv']['flops'] / 1e6:.2f}"))
    k = cost['conv']['kernel']
    rows.append((f'plain {k}x{k} conv', str(k), '1', str(out_total),
                 f"{cost['conv']['params']:,}", f"{cost['conv']['flops'] / 1e6:.2f}"))
    ratio = cost['pyconv']['flops'] / cost['conv']['flops']
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append(f'PyConv / plain conv FLOPs: {ratio:.3f}')
    return '\n'.join(lines)
