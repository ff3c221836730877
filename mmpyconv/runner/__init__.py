"""What ``tools/`` share, for every toolbox: arguments, launch, preflight checks, test-time
options and the error the tools turn into exit status 2.

The config's ``default_scope`` (mmpretrain, mmdet, mmseg, mmaction) decides the toolbox;
nothing here imports one directly. ``import mmpyconv`` does not import this package (it imports
mmengine's runner, which is heavy).
"""
from .args import (
                   TOOLBOX_SCOPES,
                   DictAction,
                   add_launch_args,
                   apply_common_args,
                   load_config,
                   parse_launch_args,
)
from .bad_data import BadDataError, data_guard
from .config_check import check_config_keys
from .errors import UsageError, run_tool
from .launch import build_runner, setup_launcher
from .preflight import build_model, check_checkpoint, preflight
from .test_time import add_dump_results, add_visualization, apply_tta

__all__ = [
    'TOOLBOX_SCOPES', 'DictAction', 'UsageError', 'run_tool', 'add_launch_args',
    'parse_launch_args', 'load_config', 'apply_common_args', 'check_config_keys', 'preflight',
    'build_model', 'check_checkpoint', 'setup_launcher', 'build_runner', 'apply_tta',
    'add_dump_results', 'add_visualization', 'BadDataError', 'data_guard'
]
