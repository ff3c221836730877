"""PyConv per level, with each level computed the way CPU convolution libraries run fastest.

Two changes from the reference (one grouped conv per level, then a concatenation), both exact
rewrites that read the same per-level parameters:

* A level with one output channel per group (``c == g``; PyConvResNet's 9x9 level with 16
  groups, most of PyConvHGResNet's levels) is a depthwise conv followed by a sum. Output
  channel ``j`` reads input channels ``j*m .. j*m+m-1`` (``m = C_in / g``) through kernel
  ``w[j, t]``; a depthwise conv over all ``C_in`` input channels with the weight ``w`` viewed as
  ``(C_in, 1, k, k)`` computes every term ``x[j*m+t] * w[j, t]``, and summing each run of ``m``
  consecutive channels gives the level. Same multiply-adds, but oneDNN's depthwise kernels are
  specialised while its grouped conv with a few channels per group is not: on a 2-core AVX2 CPU
  (batch 4, channels_last) the 9x9/16-group level of PyConvResNet-50's stage 1 ran its forward
  3x faster this way, and its forward + backward 1.3x (stride 1) to 3.3x (stride 2) faster.
  Levels with several outputs per group stay grouped convs: split into depthwise convs they
  lost in training.
* On the CPU, a layer with a grouped level of at most :data:`CHANNELS_LAST_MAX_GROUP_WIDTH`
  input channels per group runs in channels_last and returns its output in the input's layout:
  such grouped convs ran 2-6x slower in NCHW than in NHWC in oneDNN, forward and backward,
  which costs more than two layout copies. Wider groups keep the input's layout (at 64 channels
  per group NCHW was faster; at 32, PyConvHGResNet's 1024-channel stage 4 ran 2-3x slower after
  the copies).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..plan import PyConvPlan
from .layout import memory_format_of

__all__ = ['compute', 'unavailable', 'depthwise_levels', 'CHANNELS_LAST_MAX_GROUP_WIDTH']

# On the CPU, compute a layer in channels_last when one of its levels has groups > 1 with at most
# this many input channels per group (measured on a 2-core AVX2 CPU, 1 and 2 threads: NHWC won
# at 4-16 channels per group, NCHW at 64; 32 went either way).
CHANNELS_LAST_MAX_GROUP_WIDTH = 16


def depthwise_levels(plan: PyConvPlan) -> Tuple[bool, ...]:
    """Per level: whether it is computed as a depthwise conv plus a sum (one output per group,
    several inputs per group; a level with one input per group already is depthwise)."""
    return tuple(c == g and plan.in_channels // g > 1
                 for g, c in zip(plan.groups, plan.level_channels))


def _sum_channel_runs(y: torch.Tensor, runs: int) -> torch.Tensor:
    """Sum every ``y.shape[1] // runs`` consecutive channels of ``y``, keeping its layout."""
    if memory_format_of(y) == torch.channels_last:
        # In NHWC the channel runs are contiguous: reduce along the last axis, stay NHWC.
        nhwc = y.permute(0, 2, 3, 1)
        return nhwc.unflatten(-1, (runs, -1)).sum(-1).permute(0, 3, 1, 2)
    return y.unflatten(1, (runs, -1)).sum(2)


def unavailable(x: torch.Tensor, plan: PyConvPlan) -> Optional[str]:
    if plan.ndim != 2:
        return 'the depthwise form is implemented for 2D PyConvs only; use impl="reference"'
    return None


def compute(x: torch.Tensor, plan: PyConvPlan, weights: Sequence[torch.Tensor],
            biases: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """All levels of a PyConv, each as a grouped or a depthwise conv (see the module docstring)."""
    layout = memory_format_of(x)
    inputs = x
    if x.device.type == 'cpu' and layout != torch.channels_last and any(
            1 < g and plan.in_channels // g <= CHANNELS_LAST_MAX_GROUP_WIDTH
            for g in plan.groups):
        inputs = x.contiguous(memory_format=torch.channels_last)
    outs = []
    for i, (depthwise, k, g) in enumerate(zip(depthwise_levels(plan), plan.kernels,
                                              plan.groups)):
        bias = None if biases is None else biases[i]
        if depthwise:
            y = F.conv2d(inputs, weights[i].reshape(plan.in_channels, 1, k, k), None,
                         plan.stride, plan.padding(i), plan.dilation, plan.in_channels)
            y = _sum_channel_runs(y, g)
            if bias is not None:
                y = y + bias.view(1, -1, 1, 1)
        else:
            y = F.conv2d(inputs, weights[i], bias, plan.stride, plan.padding(i), plan.dilation, g)
        outs.append(y)
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
    return out.contiguous(memory_format=layout)
