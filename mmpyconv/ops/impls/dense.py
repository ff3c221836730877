"""PyConv as one dense convolution over a zero-masked weight assembled from the level weights.

Every level's ``k x k`` kernel is zero-padded to the largest kernel ``kmax`` (centred, so at any
dilation it samples the same input pixels), and a grouped level weight ``(c, C_in/g, k, k)`` is
expanded to its block-diagonal dense form ``(c, C_in, k, k)``. Stacking the levels gives one
``(C_out, C_in, kmax, kmax)`` weight: a single dense conv with the largest level's padding
computes all levels and writes their concatenation. It does more multiply-adds than the pyramid
(the masked zeros, :meth:`~mmpyconv.ops.plan.PyConvPlan.dense_flop_ratio` times as many), but
one large conv keeps a GPU busier than several small grouped ones plus a concatenation. The
weight is rebuilt from the parameters on every call with differentiable ops, so gradients land
on the per-level weights. 3D plans work the same way, padding along time as well.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..plan import PyConvPlan

__all__ = ['compute', 'unavailable', 'dense_weight']


def dense_weight(plan: PyConvPlan, weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ``(C_out, C_in, *kmax)`` dense weight equivalent to the level weights (``kmax``: the
    largest kernel along each axis; in 3D the temporal axis too)."""
    kmax = _largest_kernel(plan)
    blocks = []
    for i, (g, c, w) in enumerate(zip(plan.groups, plan.level_channels, weights)):
        kernel = plan.kernel_size(i)
        if g > 1:
            cin_g = plan.in_channels // g
            # Output group j reads only input group j: broadcast against an identity over the
            # groups to put each group's block on the diagonal.
            eye = torch.eye(g, dtype=w.dtype, device=w.device).view(g, 1, g, 1,
                                                                    *(1, ) * plan.ndim)
            w = (w.view(g, c // g, 1, cin_g, *kernel) * eye).reshape(c, plan.in_channels, *kernel)
        # F.pad lists the last axis first.
        pads = [p for k, m in zip(reversed(kernel), reversed(kmax)) for p in ((m - k) // 2, ) * 2]
        if any(pads):
            w = F.pad(w, pads)
        blocks.append(w)
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=0)


def _largest_kernel(plan: PyConvPlan) -> Tuple[int, ...]:
    return tuple(max(axis) for axis in zip(*(plan.kernel_size(i) for i in range(plan.num_levels))))


def unavailable(x: torch.Tensor, plan: PyConvPlan) -> Optional[str]:
    """Never: 2D and 3D plans alike."""
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
    padding = tuple(d * (k - 1) // 2 for k, d in zip(_largest_kernel(plan), plan.dilation))
    conv = F.conv2d if plan.ndim == 2 else F.conv3d
    return conv(x, weight, bias, plan.stride, padding, plan.dilation)
