"""PyConv as one dense convolution over a zero-masked weight assembled from the level weights.

Every level's ``k x k`` kernel is zero-padded to the largest kernel ``kmax`` (centred, so at any
dilation it samples the same input pixels), and a grouped level weight ``(c, C_in/g, k, k)`` is
expanded to its block-diagonal dense form ``(c, C_in, k, k)``. Stacking the levels gives one
``(C_out, C_in, kmax, kmax)`` weight: a single dense conv with the largest level's padding
computes all levels and writes their concatenation. It does more multiply-adds than the pyramid
(the masked zeros, :meth:`~mmpyconv.ops.plan.PyConvPlan.dense_flop_ratio` times as many), but
one large conv keeps a GPU busier than several small grouped ones plus a concatenation. The
weight is rebuilt from the parameters on every call with differentiable ops, so gradients land
on the per-level weights.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..plan import PyConvPlan

__all__ = ['compute', 'unavailable', 'dense_weight']


def dense_weight(plan: PyConvPlan, weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ``(C_out, C_in, kmax, kmax)`` dense weight equivalent to the level weights."""
    kmax = max(plan.kernels)
    blocks = []
    for k, g, c, w in zip(plan.kernels, plan.groups, plan.level_channels, weights):
        if g > 1:
            cin_g = plan.in_channels // g
            # Output group j reads only input group j: broadcast against an identity over the
            # groups to put each group's block on the diagonal.
            eye = torch.eye(g, dtype=w.dtype, device=w.device).view(g, 1, g, 1, 1, 1)
            w = (w.view(g, c // g, 1, cin_g, k, k) * eye).reshape(c, plan.in_channels, k, k)
        pad = (kmax - k) // 2
        if pad:
            w = F.pad(w, (pad, pad, pad, pad))
        blocks.append(w)
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=0)


def unavailable(x: torch.Tensor, plan: PyConvPlan) -> Optional[str]:
    if plan.ndim != 2:
        return 'the masked dense form is implemented for 2D PyConvs only; use impl="reference"'
    return None


def compute(x: torch.Tensor, plan: PyConvPlan, weights: Sequence[torch.Tensor],
            biases: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """All levels of a PyConv as one dense conv (see the module docstring)."""
    weight = dense_weight(plan, weights)
    if x.is_contiguous(memory_format=torch.channels_last):
        # A channels_last input with a contiguous weight can make cuDNN convert layouts.
        weight = weight.contiguous(memory_format=torch.channels_last)
    bias = None
    if biases is not None:
        bias = biases[0] if len(biases) == 1 else torch.cat(list(biases))
    padding = plan.padding(plan.kernels.index(max(plan.kernels)))
    return F.conv2d(x, weight, bias, plan.stride, padding, plan.dilation)
