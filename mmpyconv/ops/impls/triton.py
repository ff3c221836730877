"""Fused Triton kernels: every level in one launch, the concatenated output written in place.

The kernels themselves live in :mod:`mmpyconv.ops.impls.triton_kernels`, which needs Triton and
is imported on first use only, so that ``import mmpyconv`` works without Triton and so that
``TRITON_INTERPRET=1`` (which Triton reads when the kernels are defined) can be set first. They
run on CUDA tensors, or on CPU tensors through Triton's interpreter (slow; for tests).
"""
import os
from types import ModuleType
from typing import Optional, Sequence

import torch

from ..plan import PyConvPlan

__all__ = ['compute', 'unavailable', 'load_kernels']

_kernels: Optional[ModuleType] = None
_import_error: Optional[str] = None


def load_kernels() -> Optional[ModuleType]:
    """:mod:`~mmpyconv.ops.impls.triton_kernels`, imported on first use; None if Triton is
    unusable (the reason is kept for :func:`unavailable`)."""
    global _kernels, _import_error
    if _kernels is None and _import_error is None:
        try:
            from . import triton_kernels
            _kernels = triton_kernels
        except (ImportError, AttributeError) as e:  # no Triton, or a torch without custom ops
            _import_error = f'{type(e).__name__}: {e}'
    return _kernels


def unavailable(x: torch.Tensor, plan: PyConvPlan) -> Optional[str]:
    if plan.ndim != 2:
        return 'the fused Triton kernels are implemented for 2D PyConvs only; use impl="reference"'
    kernels = load_kernels()
    if kernels is None:
        return (f'Triton cannot be imported ({_import_error}); install triton (it comes with '
                'CUDA builds of PyTorch, 2.4 or newer) or use impl="depthwise", "dense" or '
                '"reference"')
    if x.device.type == 'cuda':
        return None
    interpret = os.environ.get('TRITON_INTERPRET') == '1'
    if x.device.type == 'cpu' and kernels.INTERPRET and interpret:
        return None
    hint = (' (TRITON_INTERPRET=1 was set after the kernels were defined; set it before '
            'the first PyConv runs)' if interpret else '')
    return (f'the fused Triton PyConv kernels run on CUDA tensors, got a {x.device.type} '
            'tensor; use impl="depthwise", "dense" or "reference" there, or set '
            'TRITON_INTERPRET=1 before the first PyConv runs to run them (slowly) through '
            f'Triton\'s interpreter{hint}')


def compute(x: torch.Tensor, plan: PyConvPlan, weights: Sequence[torch.Tensor],
            biases: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    return load_kernels().pyconv2d_triton(x, plan, weights, biases)
