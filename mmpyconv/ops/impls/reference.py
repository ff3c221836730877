"""PyConv as the paper defines it: one (grouped) convolution per level, outputs concatenated.

This is the form every other implementation is checked against, the one ONNX export and
TorchScript tracing get (every runtime knows grouped convs), and the only one for 3D plans.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..plan import PyConvPlan

__all__ = ['compute', 'unavailable']

_CONV = {2: F.conv2d, 3: F.conv3d}


def unavailable(x: torch.Tensor, plan: PyConvPlan) -> Optional[str]:
    """Never: the reference runs wherever convolutions run."""
    return None


def compute(x: torch.Tensor, plan: PyConvPlan, weights: Sequence[torch.Tensor],
            biases: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """Every level as its own grouped conv, concatenated in level order."""
    conv = _CONV[plan.ndim]
    outs = [
        conv(x, weights[i], None if biases is None else biases[i], plan.stride, plan.padding(i),
             plan.dilation, plan.groups[i]) for i in range(plan.num_levels)
    ]
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
