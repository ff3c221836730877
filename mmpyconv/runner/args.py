"""The tools' shared arguments and how they turn into a config."""
import argparse
import os
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .errors import UsageError, close_match

__all__ = [
    'TOOLBOX_SCOPES', 'DictAction', 'add_launch_args', 'parse_launch_args', 'load_config',
    'apply_common_args'
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
    refused as a typo; new keys (``model.backbone.frozen_stages``) are allowed.
    """
    if not osp.isfile(path):
        raise UsageError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    for key in cfg_options or {}:
        _check_override_key(cfg, key)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not cfg.get('default_scope'):
        raise UsageError(
            f'{path} sets no default_scope, which decides the toolbox: add e.g. '
            f"default_scope = 'mmpretrain' (one of {', '.join(TOOLBOX_SCOPES)})")
    return cfg


def _check_override_key(cfg: Config, dotted: str) -> None:
    node: Any = cfg
    walked = []
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit():
            if int(part) >= len(node):
                raise UsageError(f'--cfg-options {dotted}: {".".join(walked)} has only '
                                 f'{len(node)} entries')
            node = node[int(part)]
        elif isinstance(node, (dict, Config)):
            if part not in node:
                meant = close_match(part, node.keys()) if len(part) >= 4 else None
                if meant:
                    where = '.'.join(walked) or 'the config'
                    raise UsageError(f'--cfg-options {dotted}: {where} has no key {part!r} '
                                     f"(did you mean '{meant}'?)")
                return
            node = node[part]
        else:
            return
        walked.append(part)


def apply_common_args(cfg: Config, config_path: str, work_dir: Optional[str], launcher: str,
                      amp: bool = False, auto_scale_lr: bool = False,
                      resume: Optional[str] = None) -> None:
    """Apply the tools' common arguments to ``cfg`` in place, as the toolboxes' tools do."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
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
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
