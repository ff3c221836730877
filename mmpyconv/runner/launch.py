"""Starting a run: distributed launch on machines with and without an accelerator, the Runner.

mmengine 0.10.7's launchers cannot run without an accelerator: ``mmengine/dist/utils.py``
(``_init_dist_pytorch``, ``_init_dist_slurm``, ``_init_dist_mpi``) calls ``torch.cuda.set_device``
unconditionally and ``Runner.wrap_model`` hands ``device_ids=[LOCAL_RANK]`` to
DistributedDataParallel, so ``--launcher pytorch`` on a CPU fails with ``Found no NVIDIA
driver``; the slurm launcher also needs ``scontrol`` to find the master (references:
:data:`MMENGINE_CPU_DIST_REFERENCE`; no upstream issue tracks it). On such a machine
:func:`setup_launcher` starts a gloo process group from the launcher's environment before the
Runner is built (the Runner then skips ``init_dist``) and gives the DDP wrapper
``device_ids=None``. With an accelerator it does nothing and mmengine launches as usual. Without
one, the config's ``env_cfg.dist_cfg.backend`` becomes gloo and the log's environment record
says how many processes run, not "GPU number" (:func:`build_runner`).
"""
import datetime
import logging
import os
import re
import shutil
import subprocess
from typing import Any, Dict, Optional

from mmengine.config import Config

from ..compat import allow_mmengine_checkpoints, patch_mmdet_ssd_head
from .bad_data import BadDataError, annotation_failure, mark_datasets
from .errors import UsageError

__all__ = [
    'MMENGINE_CPU_DIST_REFERENCE', 'accelerator_available', 'slurm_first_host',
    'launch_env_problem', 'check_launch_env', 'init_cpu_process_group', 'cpu_ddp_wrapper_cfg',
    'setup_launcher', 'build_runner'
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


def launch_env_problem(launcher: str) -> Optional[str]:
    """Why the environment is not that of a ``launcher`` start (the variables it sets are
    missing), or None."""
    if launcher not in _LAUNCHER_ENV:
        return None
    env = os.environ
    rank_var, world_var, _ = _LAUNCHER_ENV[launcher]
    missing = [v for v in (rank_var, world_var) if v not in env]
    if launcher == 'pytorch':
        missing += [v for v in ('MASTER_ADDR', 'MASTER_PORT') if v not in env]
    if launcher == 'mpi' and 'MASTER_ADDR' not in env:
        missing.append('MASTER_ADDR')
    if launcher == 'slurm' and 'MASTER_ADDR' not in env and 'SLURM_NODELIST' not in env:
        missing.append('SLURM_NODELIST (or MASTER_ADDR)')
    if not missing:
        return None
    return (f'--launcher {launcher} needs the environment variables {", ".join(missing)}, '
            f'which are not set: start the command with {_LAUNCHED_BY[launcher]}, or use '
            '--launcher none for a single process')


def check_launch_env(launcher: str) -> None:
    """Refuse ``--launcher pytorch|slurm|mpi`` in a process its launcher did not start."""
    problem = launch_env_problem(launcher)
    if problem:
        raise UsageError(problem)


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
    problem = launch_env_problem(launcher)
    if problem:
        raise RuntimeError(problem)
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
    check_launch_env(launcher)
    if not accelerator_available():
        # mmengine's default (and the toolboxes' runtimes) name nccl, which the log repeats;
        # without an accelerator the processes talk through gloo.
        env_cfg = cfg.get('env_cfg') or {}
        env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
        cfg.env_cfg = env_cfg
    timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    if init_cpu_process_group(launcher, timeout_s=timeout):
        cfg.model_wrapper_cfg = cpu_ddp_wrapper_cfg(cfg.get('model_wrapper_cfg'),
                                                    cfg.get('find_unused_parameters', False))
        # DDP refuses SyncBatchNorm on CPU modules; gloo runs use per-process BN instead.
        cfg.model = _sync_bn_to_bn(cfg.model)


class _ProcessCount(logging.Filter):
    """Rewrites the environment record of a run without an accelerator: mmengine logs its
    world size as 'GPU number'."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and '\n    GPU number: ' in record.msg:
            record.msg = re.sub(r'\n    GPU number: (\d+)',
                                r'\n    processes: \1 (CPU only: no GPU)', record.msg)
        return True


def _tool_runner():
    """mmengine's Runner as the tools run it (a class made on first use: mmengine's runner
    module is heavy to import). Two differences: the environment record names the processes,
    not GPUs, on a machine without one; every dataset it builds is marked with its dataloader's
    name, for the message of :mod:`mmpyconv.runner.bad_data`."""
    global _ToolRunner
    if _ToolRunner is not None:
        return _ToolRunner
    from mmengine.runner import Runner

    class ToolRunner(Runner):

        def _log_env(self, env_cfg: dict) -> None:
            if accelerator_available():
                return super()._log_env(env_cfg)
            rename = _ProcessCount()
            self.logger.addFilter(rename)
            try:
                super()._log_env(env_cfg)
            finally:
                self.logger.removeFilter(rename)

        def build_dataloader(self, dataloader, seed=None, diff_rank_seed=False):
            # A config's test_dataloader may be its val_dataloader: both are named then.
            found = [name for name, held in (('train_dataloader', self._train_dataloader),
                                             ('val_dataloader', self._val_dataloader),
                                             ('test_dataloader', self._test_dataloader))
                     if held is dataloader]
            name = '/'.join(found) or None
            try:
                loader = Runner.build_dataloader(dataloader, seed=seed,
                                                 diff_rank_seed=diff_rank_seed)
            except UsageError:
                raise
            except Exception as error:
                message = annotation_failure(dataloader, name, error)
                if message is None:
                    raise
                raise BadDataError(message) from error
            mark_datasets(loader.dataset, name)
            return loader

    _ToolRunner = ToolRunner
    return ToolRunner


_ToolRunner = None


def build_runner(cfg: Config):
    """The Runner of the tools (:func:`_tool_runner`), or the config's ``runner_type`` from the
    RUNNERS registry."""
    from mmengine.registry import RUNNERS
    allow_mmengine_checkpoints()
    if cfg.get('default_scope') == 'mmdet':
        patch_mmdet_ssd_head()
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return _tool_runner().from_cfg(cfg)
