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
* ``'nested'`` -- grouped levels whose group counts divide one another merged into one grouped
  conv at the smallest of their group counts and the largest of their kernels (PyTorch's groups
  nest), weights assembled on the fly; dense levels stay their own convs. 2D and 3D.
* ``'auto'`` -- chosen per call by :func:`choose_impl` from the device, dtype and plan, and on
  CUDA from the table of measurements shipped as ``auto_table.json`` (:func:`measured_impl`).

Which one a layer uses: the layer's own ``impl`` (the constructor argument, so
``pyconv_cfg=dict(type='PyConv2d', impl='dense')`` in a config sets it) when it is not
``'auto'``; otherwise the process-wide default, which is set by :func:`pyconv_impl` (a context
manager), :func:`set_default_impl`, or the environment variable ``MMPYCONV_PYCONV_IMPL`` read at
import; otherwise the automatic rule. Adding an implementation is adding a row to
:data:`IMPLS`.
"""
import contextlib
import json
import os
import warnings
from types import ModuleType
from typing import Dict, Iterator, Optional, Sequence

import torch

from .impls import dense, depthwise, nested, reference, triton
from .impls.layout import memory_format_of
from .plan import PyConvPlan

__all__ = [
    'IMPLS', 'IMPL_NAMES', 'ENV_VAR', 'AUTO_DENSE_MAX_FLOP_RATIO', 'check_impl',
    'get_default_impl', 'set_default_impl', 'pyconv_impl', 'choose_impl', 'resolve_impl',
    'compute', 'AUTO_TABLE_PATH', 'AUTO_TABLE_ENV', 'AUTO_TABLE_SCHEMA', 'DTYPE_NAMES',
    'table_key', 'measured_impl', 'auto_table', 'cuda_device_name'
]

# name -> module with compute(x, plan, weights, biases) and unavailable(x, plan)
IMPLS: Dict[str, ModuleType] = {
    'reference': reference,
    'dense': dense,
    'depthwise': depthwise,
    'triton': triton,
    'nested': nested,
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
DTYPE_NAMES = {torch.float32: 'fp32', torch.bfloat16: 'bf16', torch.float16: 'fp16'}

# The table of measurements 'auto' reads on CUDA: for each GPU it was measured on (by name, as
# torch.cuda.get_device_name gives it), the fastest implementation per layer shape (table_key).
# tools/analysis/gpu_check.py --write-table writes it; MMPYCONV_AUTO_TABLE names another file.
# Layout: {"schema": 1, "tables": [{"device": ..., "torch": ..., "entries": {key: impl}, ...}]}.
AUTO_TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'auto_table.json')
AUTO_TABLE_ENV = 'MMPYCONV_AUTO_TABLE'
AUTO_TABLE_SCHEMA = 1

_auto_table: Optional[dict] = None
_device_names: Dict[int, Optional[str]] = {}


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


def table_key(plan: PyConvPlan, dtype: torch.dtype, memory_format: str) -> str:
    """The key of a layer shape in the auto table: the plan (input width, then per level kernel
    (``t.k`` in 3D), groups and width; stride; dilation), the compute dtype and the layout
    (``'channels_last'`` or ``'contiguous'``), e.g.
    ``'c64 k3,5,7,9 g1,4,8,16 o16,16,16,16 s1,1 d1,1 bf16 channels_last'``."""
    kernels = plan.kernels if plan.temporal_kernels is None else [
        f'{t}.{k}' for t, k in zip(plan.temporal_kernels, plan.kernels)]

    def join(values):
        return ','.join(str(v) for v in values)

    return (f'c{plan.in_channels} k{join(kernels)} g{join(plan.groups)} '
            f'o{join(plan.level_channels)} s{join(plan.stride)} d{join(plan.dilation)} '
            f'{DTYPE_NAMES.get(dtype, str(dtype))} {memory_format}')


def measured_impl(table: dict, device_name: Optional[str], key: str,
                  torch_version: str = torch.__version__) -> Optional[str]:
    """The implementation the auto ``table`` measured fastest for ``key`` on ``device_name``;
    None where it holds no measurement of that shape on that device (or names an implementation
    this version does not have). Among several tables of the device, one measured with the
    running torch version wins, then the one written last."""
    tables = [t for t in table.get('tables', ()) if t.get('device') == device_name]
    tables.sort(key=lambda t: t.get('torch') == torch_version)  # stable: the last one wins
    for entry in reversed(tables):
        impl = entry.get('entries', {}).get(key)
        if impl in IMPLS:
            return impl
    return None


def auto_table() -> dict:
    """The auto table (read once): ``$MMPYCONV_AUTO_TABLE`` or the package's ``auto_table.json``;
    an empty one, with a warning, where that file cannot be read or has another schema."""
    global _auto_table
    if _auto_table is None:
        path = os.environ.get(AUTO_TABLE_ENV) or AUTO_TABLE_PATH
        table = {'schema': AUTO_TABLE_SCHEMA, 'tables': []}
        try:
            with open(path) as f:
                loaded = json.load(f)
            if loaded.get('schema') != AUTO_TABLE_SCHEMA:
                raise ValueError(f'schema {loaded.get("schema")!r}, expected {AUTO_TABLE_SCHEMA}')
            table = loaded
        except (OSError, ValueError, AttributeError) as e:
            warnings.warn(f'the PyConv auto table {path} is unusable ({e}); impl="auto" falls '
                          'back to its FLOP rule on CUDA. Regenerate it with '
                          'tools/analysis/gpu_check.py --write-table')
        _auto_table = table
    return _auto_table


def cuda_device_name(device: torch.device) -> Optional[str]:
    """The GPU's name (as the auto table keys devices), cached; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device() if device.index is None else device.index
    if index not in _device_names:
        _device_names[index] = torch.cuda.get_device_name(index)
    return _device_names[index]


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a conv computes ``x`` in: autocast's where autocast is on."""
    device_type = x.device.type
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument, and it means CUDA
        enabled = device_type == 'cuda' and torch.is_autocast_enabled()
    if not enabled:
        return x.dtype
    if hasattr(torch, 'get_autocast_dtype'):
        return torch.get_autocast_dtype(device_type)
    return torch.get_autocast_gpu_dtype()


def _measured_choice(plan: PyConvPlan, x: torch.Tensor) -> Optional[str]:
    table = auto_table()
    if not table.get('tables'):
        return None
    layout = 'channels_last' if memory_format_of(x) == torch.channels_last else 'contiguous'
    return measured_impl(table, cuda_device_name(x.device),
                         table_key(plan, _compute_dtype(x), layout))


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
    * CUDA: the implementation the auto table (:func:`auto_table`, written by
      ``tools/analysis/gpu_check.py --write-table``) measured fastest for this layer shape,
      compute dtype (autocast's, under autocast) and layout on a GPU of this name. For shapes
      and GPUs the table does not cover: ``'dense'`` while the plan's dense FLOP ratio is at
      most :data:`AUTO_DENSE_MAX_FLOP_RATIO`, else ``'reference'``.
    * whatever the rule picks, ``'reference'`` where that implementation cannot run the input
      (a 3D plan, which the depthwise form and the Triton kernels do not compute).

    Without a measurement, neither the fused Triton kernels nor the nested form are chosen: the
    kernels have been checked against the reference under Triton's interpreter only, and neither
    has a GPU timing that would justify it. Ask for them explicitly (``impl='triton'``).
    """
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return 'reference'
    if x.dtype not in _FLOAT_TYPES or (plan.num_levels == 1 and plan.groups[0] == 1):
        return 'reference'
    if x.device.type != 'cuda':
        choice = 'depthwise'
    else:
        choice = _measured_choice(plan, x)
        if choice is None:
            dense_ok = plan.num_levels > 1 and plan.dense_flop_ratio() <= AUTO_DENSE_MAX_FLOP_RATIO
            choice = 'dense' if dense_ok else 'reference'
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
