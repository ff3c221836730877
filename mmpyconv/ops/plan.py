"""The shape of a PyConv layer and all the arithmetic that follows from it.

A PyConv is a pyramid of parallel convolutions over one input: level ``i`` has a kernel of
spatial size ``k_i`` (and, in 3D, temporal size ``t_i``), ``g_i`` groups and ``c_i`` output
channels; the level outputs are concatenated along the channel axis. :class:`PyConvPlan` holds
that shape, validated, and is the one place that knows what follows from it: each level's
padding (``dilation * (k - 1) // 2`` per axis, so that every level keeps the same output size at
any dilation; the original code padded by ``k // 2``, which is only right at dilation 1), the
output size, parameters and FLOPs, the cost of the masked dense form, the check of an input, and
the defaults (the paper's groups and width split). The operators (:mod:`mmpyconv.ops.pyconv`),
every implementation (:mod:`mmpyconv.ops.impls`) and the cost helpers read it; none restates it.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch

__all__ = ['PyConvPlan', 'PAPER_GROUPS', 'default_groups', 'default_split']

IntOrSeq = Union[int, Sequence[int]]

# The paper's groups per level (PyConvResNet's first stage: kernels 3, 5, 7, 9).
PAPER_GROUPS = (1, 4, 8, 16)
# The paper's split of a layer's width over its pyramid levels, as divisors of the width
# (4 levels: 1/4 each; 3 levels: 1/4, 1/4, 1/2; 2 levels: 1/2 each).
_PAPER_SPLIT = {1: (1, ), 2: (2, 2), 3: (4, 4, 2), 4: (4, 4, 4, 4)}


def default_groups(num_levels: int) -> Tuple[int, ...]:
    """Groups per level when none are given: the paper's ``(1, 4, 8, 16)`` truncated to the
    number of levels; beyond four levels, one group each."""
    if num_levels <= len(PAPER_GROUPS):
        return PAPER_GROUPS[:num_levels]
    return (1, ) * num_levels


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


def _per_axis(value: IntOrSeq, ndim: int, name: str) -> Tuple[int, ...]:
    axes = (value, ) * ndim if isinstance(value, int) else tuple(value)
    if len(axes) != ndim or not all(isinstance(v, int) and v > 0 for v in axes):
        raise ValueError(f'{name} must be a positive int or {ndim} positive ints, got {value!r}')
    return axes


def _per_level(value: IntOrSeq, num_levels: int) -> Tuple[int, ...]:
    return (value, ) * num_levels if isinstance(value, int) else tuple(value)


@dataclass(frozen=True)
class PyConvPlan:
    """The validated shape of a 2D or 3D PyConv layer: one entry per pyramid level.

    Build it with :meth:`PyConvPlan.create`, which checks every argument and says what to change.
    Axes are ``(H, W)`` in 2D and ``(T, H, W)`` in 3D; a level's kernel is ``k x k`` in space
    and ``t`` in time (``temporal_kernels`` is None for a 2D plan).
    """
    in_channels: int
    kernels: Tuple[int, ...]
    groups: Tuple[int, ...]
    level_channels: Tuple[int, ...]
    stride: Tuple[int, ...]
    dilation: Tuple[int, ...]
    temporal_kernels: Optional[Tuple[int, ...]] = None

    @property
    def ndim(self) -> int:
        """Spatial (and temporal) axes: 2 or 3."""
        return 2 if self.temporal_kernels is None else 3

    @property
    def num_levels(self) -> int:
        return len(self.kernels)

    @property
    def out_channels(self) -> int:
        return sum(self.level_channels)

    def kernel_size(self, level: int) -> Tuple[int, ...]:
        """The kernel of a level, one size per axis."""
        k = self.kernels[level]
        return (k, k) if self.temporal_kernels is None else (self.temporal_kernels[level], k, k)

    def padding(self, level: int) -> Tuple[int, ...]:
        """'Same' padding of a level at the plan's dilation, one per axis."""
        return tuple(d * (k - 1) // 2 for k, d in zip(self.kernel_size(level), self.dilation))

    @property
    def paddings(self) -> Tuple[Tuple[int, ...], ...]:
        """The padding of every level."""
        return tuple(self.padding(i) for i in range(self.num_levels))

    def output_size(self, *input_size: int) -> Tuple[int, ...]:
        """Output size for an input of ``input_size`` (``H, W`` or ``T, H, W``); every level
        gives the same, since every level pads to keep its kernel centred."""
        if len(input_size) != self.ndim:
            raise ValueError(f'a {self.ndim}D PyConv takes {self.ndim} input sizes, got '
                             f'{input_size}')
        return tuple((size + 2 * (d * (k - 1) // 2) - d * (k - 1) - 1) // s + 1
                     for size, k, d, s in zip(input_size, self.kernel_size(0), self.dilation,
                                              self.stride))

    def level_params(self, level: int, bias: bool = False) -> int:
        """Parameters of one level: its weight ``(c, C_in / g, *kernel)`` (and bias)."""
        c = self.level_channels[level]
        weights = c * (self.in_channels // self.groups[level]) * math.prod(
            self.kernel_size(level))
        return weights + (c if bias else 0)

    def level_flops(self, level: int, output_size: Sequence[int]) -> int:
        """Multiply-adds of one level for one sample, as mmengine's counter reports them
        (weights times output positions; no bias term)."""
        return self.level_params(level) * math.prod(output_size)

    def flops(self, input_size: Sequence[int]) -> int:
        """Multiply-adds of the whole layer for one sample of ``input_size``."""
        out = self.output_size(*input_size)
        return sum(self.level_flops(i, out) for i in range(self.num_levels))

    def dense_flop_ratio(self) -> float:
        """FLOPs of the masked dense form (every level as a dense conv with the largest kernel)
        over the PyConv's own FLOPs (1.0: nothing wasted)."""
        largest = max(range(self.num_levels), key=lambda i: math.prod(self.kernel_size(i)))
        dense = self.out_channels * self.in_channels * math.prod(self.kernel_size(largest))
        return dense / sum(self.level_params(i) for i in range(self.num_levels))

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse an input that is not ``(N, in_channels, *axes)`` with a message that says why.

        Skipped under ``torch.jit.trace``, where shapes are traced tensors.
        """
        if torch.jit.is_tracing():
            return
        if x.dim() != self.ndim + 2 or x.shape[1] != self.in_channels:
            axes = 'H, W' if self.ndim == 2 else 'T, H, W'
            raise ValueError(
                f'PyConv{self.ndim}d({self.in_channels}, {self.out_channels}) takes a batch of '
                f'shape (N, {self.in_channels}, {axes}), got {tuple(x.shape)}; add the batch '
                'axis with x[None] for one sample, or build the layer with the right '
                'in_channels')

    @classmethod
    def create(cls,
               in_channels: int,
               out_channels: Union[int, Sequence[int]],
               kernel_size: IntOrSeq = (3, 5, 7, 9),
               groups: Optional[IntOrSeq] = None,
               level_channels: Optional[Sequence[int]] = None,
               stride: IntOrSeq = 1,
               dilation: IntOrSeq = 1,
               temporal_kernel_size: Optional[IntOrSeq] = None) -> 'PyConvPlan':
        """Validate a PyConv's arguments.

        Args:
            in_channels: input channels, shared by every level.
            out_channels: total output width (split over the levels by ``level_channels`` or,
                if that is None, by :func:`default_split`), or the width of every level.
            kernel_size: spatial kernel size of every level (odd, positive), or one int for
                one level.
            groups: groups of every level, or one int for all levels. None:
                :func:`default_groups` (the paper's).
            level_channels: explicit width of every level; must add up to ``out_channels``.
            stride: stride of every level, one int or one per axis.
            dilation: dilation of every level, one int or one per axis.
            temporal_kernel_size: None for a 2D PyConv; for a 3D one, the temporal kernel size
                of every level (odd, positive), or one int for all levels.
        """
        kernels = (kernel_size, ) if isinstance(kernel_size, int) else tuple(kernel_size)
        if not kernels:
            raise ValueError('kernel_size is empty: a PyConv needs at least one level')
        groups = default_groups(len(kernels)) if groups is None else _per_level(
            groups, len(kernels))
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

        temporal = None
        lengths = {
            'kernel_size': len(kernels),
            'groups': len(groups),
            'level_channels': len(widths)
        }
        if temporal_kernel_size is not None:
            temporal = _per_level(temporal_kernel_size, len(kernels))
            lengths['temporal_kernel_size'] = len(temporal)
        if len(set(lengths.values())) != 1:
            raise ValueError(
                'the PyConv per-level lists have different lengths '
                f'({", ".join(f"{k}: {v}" for k, v in lengths.items())}); give one entry per '
                'pyramid level in each')
        for i, (k, g, c) in enumerate(zip(kernels, groups, widths)):
            sizes = [('kernel size', k)] + ([] if temporal is None else [('temporal kernel size',
                                                                           temporal[i])])
            for what, size in sizes:
                if not isinstance(size, int) or size <= 0 or size % 2 == 0:
                    raise ValueError(
                        f'level {i}: {what} {size!r} must be a positive odd int (the pyramid is '
                        'centred on each output position, e.g. 3, 5, 7, 9)')
            if not isinstance(g, int) or g <= 0:
                raise ValueError(f'level {i}: groups {g!r} must be a positive int')
            if not isinstance(c, int) or c <= 0:
                raise ValueError(f'level {i}: output channels {c!r} must be a positive int')
            if in_channels % g or c % g:
                raise ValueError(
                    f'level {i} (kernel {k}): in_channels={in_channels} and its output '
                    f'channels={c} must both be divisible by its groups={g}; change the groups '
                    'or the widths')
        ndim = 2 if temporal is None else 3
        return cls(in_channels, kernels, tuple(groups), widths, _per_axis(stride, ndim, 'stride'),
                   _per_axis(dilation, ndim, 'dilation'), temporal)
