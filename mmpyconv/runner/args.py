"""The tools' shared arguments and how they turn into a config."""
import argparse
import os
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .checkpoints import resume_target
from .errors import UsageError
from .launch import check_launch_env
from .overrides import apply_cfg_options

__all__ = [
    'TOOLBOX_SCOPES', 'DictAction', 'add_launch_args', 'parse_launch_args', 'load_config',
    'check_work_dir', 'apply_common_args'
]

TOOLBOX_SCOPES = ('mmpretrain', 'mmdet', 'mmseg', 'mmaction')


def add_launch_args(parser: argparse.ArgumentParser, cfg_example: str) -> None:
    """The arguments every tool shares: ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help=f'override config entries, e.g. {cfg_example}')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='how the processes were started. Default: none')
    # torch.distributed.launch passes --local-rank (older: --local_rank) to every process.
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)


def parse_launch_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and export the local rank as mmengine reads it (``LOCAL_RANK``)."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path: str, cfg_options: Optional[Dict[str, Any]] = None) -> Config:
    """``Config.fromfile`` (runs ``custom_imports``) and the ``--cfg-options`` overrides.

    An override whose key is absent but close to an existing one (``model.backbone.dpeth``) is
    refused as a typo; new keys (``model.backbone.frozen_stages``) are allowed. A top-level
    variable (``data_root=...``) is applied everywhere the config used it, and a string where
    the config holds a number is refused (:mod:`mmpyconv.runner.overrides`).
    """
    if not osp.isfile(path):
        raise UsageError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg = apply_cfg_options(cfg, path, cfg_options)
    if not cfg.get('default_scope'):
        raise UsageError(
            f'{path} sets no default_scope, which decides the toolbox: add e.g. '
            f"default_scope = 'mmpretrain' (one of {', '.join(TOOLBOX_SCOPES)})")
    return cfg


def check_work_dir(work_dir: str, where: str) -> None:
    """Refuse a work directory that is a file, or lies under one (mmengine would fail making
    it after reading everything)."""
    path = osp.abspath(work_dir)
    while path and not osp.exists(path):
        parent = osp.dirname(path)
        if parent == path:
            return
        path = parent
    if osp.exists(path) and not osp.isdir(path):
        named = '' if path == osp.abspath(work_dir) else f' ({path} is a file)'
        raise UsageError(f'{where} {work_dir} is a file{named}, not a folder: give a folder for '
                         'the logs and checkpoints (it is created if it does not exist)')


def apply_common_args(cfg: Config, config_path: str, work_dir: Optional[str], launcher: str,
                      amp: bool = False, auto_scale_lr: bool = False,
                      resume: Optional[str] = None) -> None:
    """Apply the tools' common arguments to ``cfg`` in place, as the toolboxes' tools do."""
    check_launch_env(launcher)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    check_work_dir(cfg.work_dir, '--work-dir' if work_dir is not None else 'work_dir')
    cfg.launcher = launcher
    if amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log('--amp: the config already trains in mixed precision', logger='current')
        else:
            if wrapper != 'OptimWrapper':
                raise UsageError(f'--amp replaces OptimWrapper by AmpOptimWrapper, but the '
                                 f'config uses {wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if not isinstance(cfg.get('auto_scale_lr'), dict) or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise UsageError('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) in '
                             'the config: the batch size its learning rate was set for')
        cfg.auto_scale_lr.enable = True
    if resume is not None:
        # mmengine's own auto-resume trains from scratch when it finds nothing: --resume names
        # the checkpoint it resumes, or says why there is none (checked in preflight).
        cfg.resume = True
        cfg.load_from = resume_target(cfg.work_dir, resume)
