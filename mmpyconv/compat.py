"""Named workarounds for defects of the released OpenMMLab stack, and nothing else.

Each workaround names the upstream issue (or the upstream code) it answers, so it can be deleted
when a fixed release is required. None of them imports a toolbox.

* ``MMACTION_DRN`` -- mmaction2 1.2.0 ships without ``mmaction/models/localizers/drn/`` although
  ``mmaction/models/localizers/__init__.py`` imports it, so ``import mmaction.models`` fails with
  ``No module named 'mmaction.models.localizers.drn'`` (open-mmlab/mmaction2#2714). DRN itself is
  a temporal-grounding localizer mmpyconv does not use; a placeholder whose constructor raises
  makes the rest of mmaction2 importable.

  Run ``python -m mmpyconv.compat --fix-installed`` (``tools/install.sh`` does) to write the
  placeholder package into the installed mmaction2, so that a plain ``import mmaction.models``
  works. ``import mmpyconv`` applies the in-memory form (:func:`patch_mmaction_drn`) when the
  files are missing, for a user whose mmaction2 was pip-installed by hand.

* ``MMENGINE_WEIGHTS_ONLY`` -- torch >= 2.6 loads with ``weights_only=True`` by default and
  mmengine 0.10.7 calls ``torch.load`` without the argument, so the checkpoints mmengine itself
  saves (message hub: ``HistoryBuffer`` holding numpy arrays) no longer load: ``--resume``,
  ``load_from`` and testing a saved checkpoint fail with ``Unsupported global: GLOBAL
  mmengine.logging.history_buffer.HistoryBuffer`` (open-mmlab/mmengine#1655).
  :func:`allow_mmengine_checkpoints` adds exactly what those checkpoints pickle to torch's
  weights-only allowlist (``torch.serialization.add_safe_globals``): ``HistoryBuffer``, a few
  numpy reconstructors and dtypes, and a ``getattr`` stand-in that only returns
  ``HistoryBuffer``'s statistics methods. Loading stays weights-only, so a checkpoint that
  pickles anything else is still refused; no environment variable turns the check off. The
  tools call it; Python users call it once before building a Runner.

* ``MMENGINE_CPU_DIST`` -- mmengine 0.10.7's launchers cannot run without an accelerator:
  ``mmengine/dist/utils.py`` (``_init_dist_pytorch``, ``_init_dist_slurm``, ``_init_dist_mpi``)
  calls ``torch.cuda.set_device`` unconditionally and ``Runner.wrap_model`` hands
  ``device_ids=[LOCAL_RANK]`` to DistributedDataParallel, so ``--launcher pytorch`` on a CPU
  fails with ``Found no NVIDIA driver``; the slurm launcher also needs ``scontrol`` to find the
  master. No upstream issue tracks it; the references are those functions at v0.10.7.
  :func:`init_cpu_process_group` starts a gloo process group from the launcher's environment
  (the Runner then skips ``init_dist``) and :func:`cpu_ddp_wrapper_cfg` gives the DDP wrapper
  ``device_ids=None``. Both do nothing when an accelerator is present.
"""
import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from typing import Dict, List, Optional

__all__ = [
    'MMACTION_DRN_ISSUE', 'patch_mmaction_drn', 'fix_installed_mmaction_drn',
    'MMENGINE_WEIGHTS_ONLY_ISSUE', 'mmengine_checkpoint_globals', 'allow_mmengine_checkpoints',
    'MMENGINE_CPU_DIST_REFERENCE', 'accelerator_available', 'init_cpu_process_group',
    'cpu_ddp_wrapper_cfg', 'slurm_first_host'
]

MMACTION_DRN_ISSUE = 'https://github.com/open-mmlab/mmaction2/issues/2714'
_DRN_MODULES = ('mmaction.models.localizers.drn', 'mmaction.models.localizers.drn.drn')
_DRN_MESSAGE = ('DRN is missing from the released mmaction2 1.2.0 package ({issue}); mmpyconv '
                'installed a placeholder so that the rest of mmaction2 imports. To use DRN, '
                'install mmaction2 from its git sources.')

_PLACEHOLDER_SOURCE = '''\
# Placeholder written by mmpyconv (mmpyconv/compat.py): mmaction2 1.2.0 ships without this
# package although mmaction/models/localizers/__init__.py imports it ({issue}).
from .drn import DRN  # noqa: F401
'''
_PLACEHOLDER_DRN_SOURCE = '''\
# Placeholder written by mmpyconv (mmpyconv/compat.py), see {issue}.


class DRN:
    """Stands in for mmaction2's DRN localizer, missing from the 1.2.0 release."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError({message!r})
'''


class _MissingDRN:
    """In-memory stand-in for mmaction2's DRN localizer (see module docstring)."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_DRN_MESSAGE.format(issue=MMACTION_DRN_ISSUE))


def _mmaction_dir() -> Optional[str]:
    """Directory of the installed ``mmaction`` package, found without importing it."""
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _drn_dir(mmaction_dir: str) -> str:
    return os.path.join(mmaction_dir, 'models', 'localizers', 'drn')


def _drn_missing() -> Optional[str]:
    """The mmaction package directory if it lacks the DRN package, else None."""
    root = _mmaction_dir()
    if root is None or os.path.isfile(os.path.join(_drn_dir(root), '__init__.py')):
        return None
    if not os.path.isdir(os.path.join(root, 'models', 'localizers')):
        return None
    return root


def patch_mmaction_drn() -> bool:
    """Register in-memory placeholder modules for mmaction2's missing DRN package.

    Does nothing when mmaction2 is not installed, when its DRN package exists, or when
    ``mmaction.models`` was already imported. Returns whether placeholders were registered.
    """
    if 'mmaction.models' in sys.modules or _drn_missing() is None:
        return False
    package = types.ModuleType(_DRN_MODULES[0])
    package.__path__ = []
    module = types.ModuleType(_DRN_MODULES[1])
    module.DRN = _MissingDRN
    package.DRN = _MissingDRN
    package.drn = module
    sys.modules.setdefault(_DRN_MODULES[0], package)
    sys.modules.setdefault(_DRN_MODULES[1], module)
    return True


def fix_installed_mmaction_drn() -> Optional[str]:
    """Write the placeholder DRN package into the installed mmaction2 if it is missing.

    Returns the directory written, or None when nothing needed doing.
    """
    root = _drn_missing()
    if root is None:
        return None
    target = _drn_dir(root)
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, 'drn.py'), 'w') as f:
        f.write(_PLACEHOLDER_DRN_SOURCE.format(
            issue=MMACTION_DRN_ISSUE,
            message=_DRN_MESSAGE.format(issue=MMACTION_DRN_ISSUE)))
    with open(os.path.join(target, '__init__.py'), 'w') as f:
        f.write(_PLACEHOLDER_SOURCE.format(issue=MMACTION_DRN_ISSUE))
    return target


MMENGINE_WEIGHTS_ONLY_ISSUE = 'https://github.com/open-mmlab/mmengine/issues/1655'


def _history_buffer_statistic(owner: type, name: str):
    """``getattr`` as mmengine checkpoints use it, and nothing more.

    A ``HistoryBuffer`` pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``
    and so on. Allowing the real ``getattr`` would let a crafted file reach any attribute (and
    from there ``eval``); this stand-in, registered under the name ``builtins.getattr``, only
    returns the statistics methods registered on ``HistoryBuffer``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # The built-in statistics, and any registered with HistoryBuffer.register_statistics.
    statistics = {'min', 'max', 'mean', 'current', *HistoryBuffer._statistics_methods}
    if (isinstance(owner, type) and issubclass(owner, HistoryBuffer) and isinstance(name, str)
            and name in statistics):
        return getattr(owner, name)
    import pickle
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a weights-only load: mmpyconv allows '
        'getattr only for the HistoryBuffer statistics that mmengine checkpoints contain')


def mmengine_checkpoint_globals() -> List[object]:
    """What a checkpoint saved by mmengine's Runner pickles beyond torch's default allowlist.

    The message hub keeps ``HistoryBuffer`` objects. Each holds numpy arrays (pickled through
    numpy's ``_reconstruct``, ``ndarray``, ``dtype`` and a dtype class), numpy scalars
    (``scalar``) and its statistics methods (``getattr(HistoryBuffer, 'mean')``, allowed here
    only in that form, see :func:`_history_buffer_statistic`). Tensors, dicts, lists, strings and
    numbers are allowed by torch already.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    # numpy 2 moved the pickled functions to numpy._core; numpy 1 keeps them in numpy.core.
    multiarray = getattr(getattr(np, '_core', None), 'multiarray', None) or np.core.multiarray
    dtype_classes = [
        type(np.dtype(name))
        for name in ('float64', 'float32', 'float16', 'int64', 'int32', 'uint8', 'bool')
    ]
    return [
        HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
        *dtype_classes, (_history_buffer_statistic, 'builtins.getattr')
    ]


def allow_mmengine_checkpoints() -> bool:
    """Let weights-only ``torch.load`` read the checkpoints mmengine's Runner saves.

    Adds :func:`mmengine_checkpoint_globals` to torch's allowlist (see the module docstring,
    ``MMENGINE_WEIGHTS_ONLY``). Returns False when torch has no weights-only allowlist (torch <
    2.4, whose ``torch.load`` does not default to weights-only), True otherwise. Idempotent.
    """
    import torch.serialization as serialization
    add_safe_globals = getattr(serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_checkpoint_globals())
    return True


MMENGINE_CPU_DIST_REFERENCE = (
    'https://github.com/open-mmlab/mmengine/blob/v0.10.7/mmengine/dist/utils.py '
    '(_init_dist_pytorch, _init_dist_slurm, _init_dist_mpi call torch.cuda.set_device) and '
    'https://github.com/open-mmlab/mmengine/blob/v0.10.7/mmengine/runner/runner.py '
    '(Runner.wrap_model passes device_ids=[LOCAL_RANK])')

# What each launcher puts in the environment: (rank, world size, local rank).
_LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'),
}
_LAUNCHED_BY = {
    'pytorch': 'torchrun (tools/dist_train.sh, tools/dist_test.sh)',
    'slurm': 'srun (tools/slurm_train.sh, tools/slurm_test.sh)',
    'mpi': 'mpirun (Open MPI)',
}


def accelerator_available() -> bool:
    """Whether a device that mmengine's own launchers know how to select is present."""
    import torch
    from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
    return (torch.cuda.is_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def slurm_first_host(nodelist: str) -> str:
    """The first host of a Slurm node list such as ``node[01-04,07],gpu3`` (here ``node01``).

    Uses ``scontrol show hostnames`` where it is installed (as mmengine does), else expands the
    first entry itself, so that a job step without Slurm's tools still finds its master.
    """
    if shutil.which('scontrol'):
        result = subprocess.run(['scontrol', 'show', 'hostnames', nodelist],
                                capture_output=True, text=True, timeout=60)
        hosts = result.stdout.split()
        if result.returncode == 0 and hosts:
            return hosts[0]
    depth, first = 0, []
    for char in nodelist.strip():
        if char == ',' and depth == 0:
            break
        depth += {'[': 1, ']': -1}.get(char, 0)
        first.append(char)
    # Each bracket holds ranges and single numbers; the first host takes the first of each.
    host = re.sub(r'\[([^\]]*)\]', lambda m: re.split(r'[-,]', m.group(1))[0], ''.join(first))
    if not host:
        raise ValueError(f'cannot read a host name from SLURM_NODELIST={nodelist!r}')
    return host


def init_cpu_process_group(launcher: str,
                           backend: str = 'gloo',
                           timeout_s: Optional[float] = None) -> bool:
    """Start the process group of a CPU-only distributed launch (``MMENGINE_CPU_DIST``).

    Reads rank, world size and local rank from the launcher's environment (torchrun's ``RANK``
    ..., srun's ``SLURM_PROCID`` ..., Open MPI's ``OMPI_COMM_WORLD_*``), exports them as
    ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (which mmengine reads later), finds the master
    (``MASTER_ADDR``/``MASTER_PORT``; for slurm the first host of ``SLURM_NODELIST`` and port
    29500 unless set) and initialises torch.distributed with ``backend``.

    Returns True if it started a process group; False when nothing was needed: launcher
    ``'none'``, an accelerator present (mmengine's own ``init_dist`` is right there), or a group
    already initialised.

    Raises:
        ValueError: for an unknown launcher.
        RuntimeError: when the launcher's environment variables are missing.
    """
    if launcher == 'none':
        return False
    if launcher not in _LAUNCHER_ENV:
        raise ValueError(f'unknown launcher {launcher!r}; choose one of '
                         f'{["none", *_LAUNCHER_ENV]}')
    import torch.distributed as dist
    if accelerator_available() or (dist.is_available() and dist.is_initialized()):
        return False
    env = os.environ
    rank_var, world_var, local_var = _LAUNCHER_ENV[launcher]
    missing = [v for v in (rank_var, world_var) if v not in env]
    if launcher == 'pytorch':
        missing += [v for v in ('MASTER_ADDR', 'MASTER_PORT') if v not in env]
    if launcher == 'mpi' and 'MASTER_ADDR' not in env:
        missing.append('MASTER_ADDR')
    if launcher == 'slurm' and 'MASTER_ADDR' not in env and 'SLURM_NODELIST' not in env:
        missing.append('SLURM_NODELIST (or MASTER_ADDR)')
    if missing:
        raise RuntimeError(
            f'--launcher {launcher} needs the environment variables {", ".join(missing)}, which '
            f'are not set: start the command with {_LAUNCHED_BY[launcher]}, or use '
            '--launcher none for a single process')
    rank, world_size = int(env[rank_var]), int(env[world_var])
    local_rank = int(env.get(local_var, 0))
    if launcher == 'slurm' and 'MASTER_ADDR' not in env:
        env['MASTER_ADDR'] = slurm_first_host(env['SLURM_NODELIST'])
    env.setdefault('MASTER_PORT', '29500')
    env.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(local_rank))
    kwargs = {}
    if timeout_s is not None:
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=timeout_s)
    dist.init_process_group(backend=backend, init_method='env://', rank=rank,
                            world_size=world_size, **kwargs)
    return True


def cpu_ddp_wrapper_cfg(model_wrapper_cfg: Optional[Dict],
                        find_unused_parameters: bool = False) -> Dict:
    """A ``model_wrapper_cfg`` whose DistributedDataParallel runs on the CPU (``device_ids=None``).

    ``None`` becomes what the Runner builds by default (``MMDistributedDataParallel`` without
    buffer broadcasting); a given config keeps its settings. Wrappers that are not a
    DistributedDataParallel are returned unchanged.
    """
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    if model_wrapper_cfg is None:
        model_wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                 find_unused_parameters=find_unused_parameters)
    cfg = dict(model_wrapper_cfg)
    cfg.setdefault('type', 'MMDistributedDataParallel')
    wrapper = cfg['type'] if isinstance(cfg['type'], type) else MODEL_WRAPPERS.get(cfg['type'])
    if wrapper is not None and issubclass(wrapper, DistributedDataParallel):
        cfg['device_ids'] = None
    return cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Apply mmpyconv\'s named workarounds for released OpenMMLab defects.')
    parser.add_argument('--fix-installed', action='store_true',
                        help='write placeholder files into installed packages that need them')
    args = parser.parse_args(argv)
    if not args.fix_installed:
        parser.print_help()
        return 0
    written = fix_installed_mmaction_drn()
    if written:
        print(f'mmaction2: wrote the placeholder DRN package to {written} ({MMACTION_DRN_ISSUE})')
    else:
        print('mmaction2: nothing to fix (not installed, or DRN present)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
