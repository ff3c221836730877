"""Which implementation computes a :class:`~mmpyconv.ops.PyConv2d`: the one dispatch point.

Implementations (all read the same per-level parameters, so checkpoints are interchangeable):

* ``'reference'`` -- one grouped conv per level, outputs concatenated (``torch.cat``).
* ``'dense'`` -- the level weights zero-padded to the largest kernel and expanded from grouped
  to block-diagonal dense form, assembled on the fly; one dense conv computes every level
  (:mod:`mmpyconv.ops.pyconv_dense`). Pure PyTorch, runs wherever convs run.
* ``'depthwise'`` -- per level like the reference, but levels with one output channel per group
  run as a depthwise conv plus a sum, and on the CPU a layer with narrow groups runs in
  channels_last (:mod:`mmpyconv.ops.pyconv_depthwise`). Pure PyTorch; the fastest form on CPUs.
* ``'triton'`` -- fused Triton kernels: every level in one launch, the concatenated output
  written in place (:mod:`mmpyconv.ops.pyconv_triton`). CUDA tensors, or CPU tensors under
  ``TRITON_INTERPRET=1`` (Triton's interpreter; for tests).
* ``'auto'`` -- chosen per call by :func:`choose_impl` from the device, dtype and plan.

Which one a layer uses: the layer's own ``impl`` (the ``PyConv2d`` constructor argument, so
``pyconv_cfg=dict(type='PyConv2d', impl='dense')`` in a config sets it) when it is not
``'auto'``; otherwise the process-wide default, which is set by :func:`pyconv_impl` (a context
manager), :func:`set_default_impl`, or the environment variable ``MMPYCONV_PYCONV_IMPL`` read at
import; otherwise the automatic rule.
"""
import contextlib
import os
from types import ModuleType
from typing import Iterator, Optional

import torch

__all__ = [
    'IMPLS', 'ENV_VAR', 'AUTO_DENSE_MAX_FLOP_RATIO', 'check_impl', 'get_default_impl',
    'set_default_impl', 'pyconv_impl', 'choose_impl', 'resolve_impl', 'dense_flop_ratio',
    'triton_unavailable_reason', 'load_triton_impl', 'memory_format_of'
]

IMPLS = ('auto', 'reference', 'dense', 'depthwise', 'triton')
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
    if impl not in IMPLS:
        raise ValueError(f'{what}={impl!r} is not a PyConv implementation; choose one of '
                         f'{list(IMPLS)}')
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


def dense_flop_ratio(plan) -> float:
    """FLOPs of the masked dense form over the PyConv's own FLOPs (1.0: nothing wasted)."""
    kmax = max(plan.kernels)
    dense = plan.out_channels * plan.in_channels * kmax * kmax
    own = sum(c * (plan.in_channels // g) * k * k
              for k, g, c in zip(plan.kernels, plan.groups, plan.level_channels))
    return dense / own


def choose_impl(plan, x: torch.Tensor) -> str:
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
    * CUDA: ``'dense'`` while :func:`dense_flop_ratio` is at most
      :data:`AUTO_DENSE_MAX_FLOP_RATIO`, else ``'reference'``.

    The fused Triton kernels are not chosen automatically yet: they have been checked against
    the reference under Triton's interpreter only, and have no GPU timing that would justify
    them. Ask for them explicitly (``impl='triton'``).
    """
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return 'reference'
    if x.dtype not in _FLOAT_TYPES or (plan.num_levels == 1 and plan.groups[0] == 1):
        return 'reference'
    if x.device.type != 'cuda':
        return 'depthwise'
    if plan.num_levels > 1 and dense_flop_ratio(plan) <= AUTO_DENSE_MAX_FLOP_RATIO:
        return 'dense'
    return 'reference'


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """The layout an implementation hands its output back in: channels_last for a
    channels_last tensor that is not also plain contiguous, else contiguous."""
    return (torch.channels_last
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else
            torch.contiguous_format)


def resolve_impl(impl: str, plan, x: torch.Tensor) -> str:
    """The concrete implementation for a layer asking for ``impl`` (never ``'auto'``)."""
    if impl == 'auto':
        impl = _default_impl
    if impl == 'auto':
        return choose_impl(plan, x)
    return check_impl(impl, 'PyConv2d.impl')


_triton_module: Optional[ModuleType] = None
_triton_import_error: Optional[str] = None


def load_triton_impl() -> Optional[ModuleType]:
    """Import :mod:`mmpyconv.ops.pyconv_triton` on first use; None if Triton is unusable.

    Importing it is deferred so that ``import mmpyconv`` works without Triton, and so that
    ``TRITON_INTERPRET`` (which Triton reads when the kernels are defined) can be set first.
    """
    global _triton_module, _triton_import_error
    if _triton_module is None and _triton_import_error is None:
        try:
            from . import pyconv_triton
            _triton_module = pyconv_triton
        except ImportError as e:
            _triton_import_error = f'{type(e).__name__}: {e}'
    return _triton_module


def triton_unavailable_reason(x: torch.Tensor) -> Optional[str]:
    """Why the Triton implementation cannot run on ``x``; None when it can."""
    module = load_triton_impl()
    if module is None:
        return (f'Triton cannot be imported ({_triton_import_error}); install triton (it comes '
                'with CUDA builds of PyTorch) or use impl="dense" or "reference"')
    if x.device.type == 'cuda':
        return None
    interpret = os.environ.get('TRITON_INTERPRET') == '1'
    if x.device.type == 'cpu' and module.INTERPRET and interpret:
        return None
    hint = (' (TRITON_INTERPRET=1 was set after the kernels were defined; set it before '
            'the first PyConv runs)' if interpret else '')
    return (f'the fused Triton PyConv kernels run on CUDA tensors, got a {x.device.type} '
            'tensor; use impl="depthwise", "dense" or "reference" there, or set '
            'TRITON_INTERPRET=1 before the first PyConv runs to run them (slowly) through '
            f'Triton\'s interpreter{hint}')
