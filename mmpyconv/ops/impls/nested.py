"""PyConv with its grouped levels merged into one grouped conv: PyTorch's groups nest.

A conv with ``G`` groups splits its input and output channels into ``G`` contiguous chunks, and
output chunk ``j`` reads input chunk ``j`` only. A level with ``g`` groups, ``G`` dividing ``g``,
splits each of those chunks further into ``r = g / G`` contiguous sub-groups: it *is* a
``G``-group conv whose weight, inside each of the ``G`` groups, is block diagonal (sub-group ``s``
of the chunk's outputs reads sub-group ``s`` of its inputs; zeros elsewhere). So levels whose
group counts divide one another merge into one conv at the smallest of their group counts, each
level's weight expanded to that block-diagonal form and zero-padded (centred, as in
:mod:`.dense`) to the largest kernel among them, the levels' chunks stacked inside every group.

The rule (:func:`nested_convs`): dense levels (one group) stay convs of their own; a grouped
level joins the first earlier set of grouped levels whose group counts all divide, or are
divisible by, its own (so that the set's smallest count divides every count in it), else starts
a set. PyConvResNet's stage 1 (kernels 3/5/7/9, groups 1/4/8/16) becomes the 3x3 dense conv
plus one 9x9 conv at 4 groups: two convs instead of four, at 2.6x the layer's own multiply-adds,
where the masked dense form does 12.3x (:func:`nested_flop_ratio`). Fewer, larger convs keep a
GPU busier; on a CPU, where convs are bound by arithmetic, the extra multiply-adds cost time.

The merged conv writes its output group-major (group ``j``: level a's chunk ``j``, level b's
chunk ``j``, ...), while the layer's output is level-major (levels concatenated, level a's chunk
``j`` being its channels ``j*c/G .. (j+1)*c/G - 1``). Every conv's output is copied straight into
its place in one output tensor, in the input's memory layout: one copy, as the reference's
concatenation, whose backward is one copy too (a split, not a zero-filled tensor per level).

The weights are rebuilt from the level weights on every call by multiplication with constant
0/1 masks and zero padding, so gradients reach the level weights exactly. 2D and 3D plans.
"""
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..plan import PyConvPlan

__all__ = ['NestedConv', 'nested_convs', 'nested_weight', 'nested_params', 'nested_flop_ratio',
           'compute', 'unavailable']

_CONV = {2: F.conv2d, 3: F.conv3d}


class NestedConv(NamedTuple):
    """One conv of the nested form: the plan levels it computes (in plan order), its groups and
    its kernel (the largest of its levels' kernels, per axis)."""
    levels: Tuple[int, ...]
    groups: int
    kernel: Tuple[int, ...]


def _nests(a: int, b: int) -> bool:
    return a % b == 0 or b % a == 0


def nested_convs(plan: PyConvPlan) -> Tuple[NestedConv, ...]:
    """The convs that compute ``plan`` in the nested form (see the module docstring for the
    rule), in the order of their first level."""
    sets: List[List[int]] = []
    for i, g in enumerate(plan.groups):
        home = None
        if g > 1:
            home = next((s for s in sets if plan.groups[s[0]] > 1 and all(
                _nests(plan.groups[j], g) for j in s)), None)
        if home is None:
            sets.append([i])
        else:
            home.append(i)
    return tuple(
        NestedConv(tuple(s), min(plan.groups[i] for i in s),
                   tuple(max(axis) for axis in zip(*(plan.kernel_size(i) for i in s))))
        for s in sets)


def nested_params(plan: PyConvPlan) -> int:
    """Weights (no biases) of the nested form's convs, the structural zeros included."""
    total = 0
    for conv in nested_convs(plan):
        out = sum(plan.level_channels[i] for i in conv.levels)
        total += out * (plan.in_channels // conv.groups) * math.prod(conv.kernel)
    return total


def nested_flop_ratio(plan: PyConvPlan) -> float:
    """Multiply-adds of the nested form over the PyConv's own (1.0: nothing wasted; every conv
    has the same output positions, so this is the ratio of weights)."""
    return nested_params(plan) / sum(plan.level_params(i) for i in range(plan.num_levels))


def nested_weight(plan: PyConvPlan, conv: NestedConv,
                  weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ``(sum c_i, C_in / G, *kernel)`` weight of a merged conv, its rows group-major."""
    groups = conv.groups
    cin_group = plan.in_channels // groups
    blocks = []
    for i in conv.levels:
        w, g, c = weights[i], plan.groups[i], plan.level_channels[i]
        kernel = tuple(w.shape[2:])
        sub = g // groups  # the level's sub-groups inside one of the conv's groups
        if sub > 1:
            # (G, sub, c/g, 1, C_in/g, *k) * eye(sub) -> block diagonal inside every group
            eye = torch.eye(sub, dtype=w.dtype, device=w.device).view(
                1, sub, 1, sub, 1, *(1, ) * len(kernel))
            w = w.view(groups, sub, c // g, 1, plan.in_channels // g, *kernel) * eye
        w = w.reshape(groups, c // groups, cin_group, *kernel)
        pad = []
        for big, small in zip(reversed(conv.kernel), reversed(kernel)):
            pad += [(big - small) // 2] * 2
        if any(pad):
            w = F.pad(w, pad)
        blocks.append(w)
    weight = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
    return weight.reshape(-1, cin_group, *conv.kernel)


def _layout(x: torch.Tensor) -> torch.memory_format:
    """The input's memory layout, which the output keeps (channels_last in 2D or 3D)."""
    if x.is_contiguous() or x.dim() not in (4, 5):
        return torch.contiguous_format
    fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    return fmt if x.is_contiguous(memory_format=fmt) else torch.contiguous_format


def unavailable(x: torch.Tensor, plan: PyConvPlan) -> Optional[str]:
    """Never: grouped convs run wherever convolutions run, in 2D and 3D."""
    return None


def compute(x: torch.Tensor, plan: PyConvPlan, weights: Sequence[torch.Tensor],
            biases: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """The PyConv's output through the nested form's convs (see the module docstring)."""
    conv_nd = _CONV[plan.ndim]
    layout = _layout(x)
    convs = nested_convs(plan)
    outs = []
    for conv in convs:
        if len(conv.levels) == 1:
            i = conv.levels[0]
            outs.append(conv_nd(x, weights[i], None if biases is None else biases[i],
                                plan.stride, plan.padding(i), plan.dilation, plan.groups[i]))
            continue
        weight = nested_weight(plan, conv, weights)
        if layout != torch.contiguous_format:
            # A channels_last input with a contiguous weight can make cuDNN convert layouts.
            weight = weight.contiguous(memory_format=layout)
        bias = None
        if biases is not None:
            bias = torch.cat([biases[i].view(conv.groups, -1) for i in conv.levels], 1).flatten()
        padding = tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel, plan.dilation))
        outs.append(conv_nd(x, weight, bias, plan.stride, padding, plan.dilation, conv.groups))
    if len(convs) == 1 and len(convs[0].levels) == 1:
        return outs[0]

    first = outs[0]
    out = torch.empty((first.shape[0], plan.out_channels, *first.shape[2:]), dtype=first.dtype,
                      device=first.device, memory_format=layout)
    starts = [sum(plan.level_channels[:i]) for i in range(plan.num_levels)]
    for conv, y in zip(convs, outs):
        if len(conv.levels) == 1:
            i = conv.levels[0]
            out[:, starts[i]:starts[i] + plan.level_channels[i]].copy_(y)
            continue
        widths = [plan.level_channels[i] // conv.groups for i in conv.levels]
        pieces = y.unflatten(1, (conv.groups, -1)).split(widths, dim=2)
        for i, piece in zip(conv.levels, pieces):
            target = out[:, starts[i]:starts[i] + plan.level_channels[i]]
            target.unflatten(1, (conv.groups, -1)).copy_(piece)
    return out
