"""Starting a run: distributed launch on machines with and without an accelerator, the Runner.

mmengine 0.10.7's launchers cannot run without an accelerator: ``mmengine/dist/utils.py``
(``_init_dist_pytorch``, ``_init_dist_slurm``, ``_init_dist_mpi``) calls ``torch.cuda.set_device``
unconditionally and ``Runner.wrap_model`` hands ``device_ids=[LOCAL_RANK]`` to
DistributedDataParallel, so ``--launcher pytorch`` on a CPU fails with ``Found no NVIDIA
driver``; the slurm launcher also needs ``scontrol`` to find the master (references:
:data:`MMENGINE_CPU_DIST_REFERENCE`; no upstream issue tracks it). On such a machine
:func:`setup_launcher` starts a gloo process group from the launcher's environment before the
Runner is built (the Runner then skips ``init_dist``) and gives the DDP wrapper
``device_ids=None``. With an accelerator it does nothing and mmengine launches as usual.
"""
import datetime
import os
import re
import shutil
import subprocess
from typing import Any, Dict, Optional

from mmengine.config import Config

from ..compat import allow_mmengine_checkpoints, patch_mmdet_ssd_head

__all__ = [
    'MMENGINE_CPU_DIST_REFERENCE', 'accelerator_available', 'slurm_first_host',
    'init_cpu_process_group', 'cpu_ddp_wrapper_cfg', 'setup_launcher', 'build_runner'
]

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
    import mmengine.device
    import torch
    # is_musa_available came with mmengine 0.10; older releases know the others.
    checks = ('is_npu_available', 'is_mlu_available', 'is_musa_available')
    return torch.cuda.is_available() or any(
        getattr(mmengine.device, name, lambda: False)() for name in checks)


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
    """Start the process group of a distributed launch on a machine without an accelerator.

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


def _sync_bn_to_bn(node: Any) -> Any:
    """A copy of a config node with every ``norm_cfg`` of type SyncBN turned into BN."""
    if isinstance(node, dict):
        out = type(node)({k: _sync_bn_to_bn(v) for k, v in node.items()})
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_sync_bn_to_bn(v) for v in node)
    return node


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Start a distributed launch on a machine without an accelerator, before the Runner (see
    the module docstring); with an accelerator, or ``--launcher none``, do nothing."""
    timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    if init_cpu_process_group(launcher, timeout_s=timeout):
        cfg.model_wrapper_cfg = cpu_ddp_wrapper_cfg(cfg.get('model_wrapper_cfg'),
                                                    cfg.get('find_unused_parameters', False))
        # DDP refuses SyncBatchNorm on CPU modules; gloo runs use per-process BN instead.
        cfg.model = _sync_bn_to_bn(cfg.model)


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the config's ``runner_type`` from the RUNNERS registry."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    allow_mmengine_checkpoints()
    if cfg.get('default_scope') == 'mmdet':
        patch_mmdet_ssd_head()
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
