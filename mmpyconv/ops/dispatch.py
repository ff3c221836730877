"""Which implementation computes a PyConv: the table of them, the defaults and the rule.

Implementations (:mod:`mmpyconv.ops.impls`; all read the same per-level parameters, so
checkpoints are interchangeable):

* ``'reference'`` -- one grouped conv per level, outputs concatenated. 2D and 3D.
* ``'dense'`` -- the level weights zero-padded to the largest kernel and expanded from grouped
  to block-diagonal dense form, assembled on the fly; one dense conv computes every level.
* ``'depthwise'`` -- per level like the reference, but levels with one output channel per group
  run as a depthwise conv plus a sum, and on the CPU a layer with narrow groups runs in
  channels_last. The fastest form on CPUs.
* ``'triton'`` -- fused Triton kernels: every level in one launch, the concatenated output
  written in place. CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1`` (for tests).
* ``'auto'`` -- chosen per call by :func:`choose_impl` from the device, dtype and plan.

Which one a layer uses: the layer's own ``impl`` (the constructor argument, so
``pyconv_cfg=dict(type='PyConv2d', impl='dense')`` in a config sets it) when it is not
``'auto'``; otherwise the process-wide default, which is set by :func:`pyconv_impl` (a context
manager), :func:`set_default_impl`, or the environment variable ``MMPYCONV_PYCONV_IMPL`` read at
import; otherwise the automatic rule. Adding an implementation is adding a row to
:data:`IMPLS`.
"""
import contextlib
import os
from types import ModuleType
from typing import Dict, Iterator, Optional, Sequence

import torch

from .impls import dense, depthwise, reference, triton
from .plan import PyConvPlan

__all__ = [
    'IMPLS', 'IMPL_NAMES', 'ENV_VAR', 'AUTO_DENSE_MAX_FLOP_RATIO', 'check_impl',
    'get_default_impl', 'set_default_impl', 'pyconv_impl', 'choose_impl', 'resolve_impl',
    'compute'
]

# name -> module with compute(x, plan, weights, biases) and unavailable(x, plan)
IMPLS: Dict[str, ModuleType] = {
    'reference': reference,
    'dense': dense,
    'depthwise': depthwise,
    'triton': triton,
}
IMPL_NAMES = ('auto', *IMPLS)
ENV_VAR = 'MMPYCONV_PYCONV_IMPL'

# 'auto' on CUDA uses the masked dense form while it costs at most this many times the
# PyConv's own FLOPs. Measured on an H200 (bf16, channels_last, batch 128, training):
# PyConvResNet-50 ran 1.40x faster with every PyConv dense, although its stage plans cost
# 12.3x (stage 1), 7.1x (stage 2) and 3.3x (stage 3) their FLOPs dense. PyConvHGResNet's plans
# (groups 32/64) would cost 63-89x: those stay per level until a measurement says otherwise.
# The per-layer table of tools/analysis/benchmark.py times each implementation to revisit this.
AUTO_DENSE_MAX_FLOP_RATIO = 16.0

_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_impl(impl: str, what: str = 'impl') -> str:
    """``impl`` if it names an implementation; else a ValueError naming the choices."""
    if impl not in IMPL_NAMES:
        raise ValueError(f'{what}={impl!r} is not a PyConv implementation; choose one of '
                         f'{list(IMPL_NAMES)}')
    return impl


_default_impl = check_impl(os.environ.get(ENV_VAR, 'auto') or 'auto', ENV_VAR)


def get_default_impl() -> str:
    """The process-wide implementation used by layers whose own ``impl`` is ``'auto'``."""
    return _default_impl


def set_default_impl(impl: str) -> None:
    """Set the process-wide implementation (see the module docstring for precedence)."""
    global _default_impl
    _default_impl = check_impl(impl)


@contextlib.contextmanager
def pyconv_impl(impl: str) -> Iterator[None]:
    """Use ``impl`` for every PyConv whose own ``impl`` is ``'auto'``, inside the block.

    Example:
        >>> with pyconv_impl('dense'):
        ...     out = model(images)
    """
    previous = _default_impl
    set_default_impl(impl)
    try:
        yield
    finally:
        set_default_impl(previous)


def choose_impl(plan: PyConvPlan, x: torch.Tensor) -> str:
    """The automatic rule: which implementation ``'auto'`` runs for this plan and input.

    * exporting to ONNX or tracing with TorchScript: ``'reference'``, so that a deployed graph
      holds the plain grouped convs every runtime knows, not a form tuned for the exporting
      machine (ask for another implementation explicitly to export it).
    * one level without groups, or a dtype other than fp16/bf16/fp32: ``'reference'`` (one
      plain conv already).
    * not CUDA (CPU and others): ``'depthwise'``. On a 2-core CPU (batch 4, 224 px, 1 and 2
      threads) it ran PyConvResNet-50 as fast as the reference or up to 5% faster in
      channels_last and 1.3-1.6x faster in NCHW, PyConvHGResNet-50 1.2x and 1.6-2x faster
      (tools/analysis/benchmark.py; the tables are in docs/speed.md). The dense form loses
      there: CPU convs are bound by arithmetic, which the masked zeros multiply.
    * CUDA: ``'dense'`` while the plan's dense FLOP ratio is at most
      :data:`AUTO_DENSE_MAX_FLOP_RATIO`, else ``'reference'``.
    * whatever the rule picks, ``'reference'`` where that implementation cannot run the input
      (a 3D plan, for now).

    The fused Triton kernels are not chosen automatically yet: they have been checked against
    the reference under Triton's interpreter only, and have no GPU timing that would justify
    them. Ask for them explicitly (``impl='triton'``).
    """
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return 'reference'
    if x.dtype not in _FLOAT_TYPES or (plan.num_levels == 1 and plan.groups[0] == 1):
        return 'reference'
    if x.device.type != 'cuda':
        choice = 'depthwise'
    elif plan.num_levels > 1 and plan.dense_flop_ratio() <= AUTO_DENSE_MAX_FLOP_RATIO:
        choice = 'dense'
    else:
        choice = 'reference'
    return 'reference' if IMPLS[choice].unavailable(x, plan) else choice


def resolve_impl(impl: str, plan: PyConvPlan, x: torch.Tensor) -> str:
    """The concrete implementation for a layer asking for ``impl`` (never ``'auto'``)."""
    if impl == 'auto':
        impl = _default_impl
    if impl == 'auto':
        return choose_impl(plan, x)
    return check_impl(impl, f'PyConv{plan.ndim}d.impl')


def compute(impl: str, plan: PyConvPlan, x: torch.Tensor, weights: Sequence[torch.Tensor],
            biases: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """A PyConv's output, by the implementation that ``impl`` resolves to.

    Raises:
        RuntimeError: the implementation asked for cannot run this input; says which can.
    """
    name = resolve_impl(impl, plan, x)
    implementation = IMPLS[name]
    reason = implementation.unavailable(x, plan)
    if reason is not None:
        raise RuntimeError(f'PyConv{plan.ndim}d(impl="{name}"): {reason}')
    return implementation.compute(x, plan, weights, biases)
