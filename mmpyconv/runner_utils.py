"""What ``tools/train.py`` and ``tools/test.py`` share, for every toolbox.

The config's ``default_scope`` (mmpretrain, mmdet, mmseg, mmaction) decides the toolbox; nothing
here imports one directly. Two kinds of helpers:

* preparation: load a config with ``--cfg-options``, apply the tools' common arguments
  (:func:`apply_common_args`), start a CPU-only distributed launch
  (:func:`setup_launcher`, see :mod:`mmpyconv.compat`), build the Runner (:func:`build_runner`);
* checks (:func:`preflight`) that run before the Runner exists. The Runner creates the work
  directory, writes its log there and dumps the config over any earlier copy as soon as it is
  built, then fails later (on a missing dataset, a misspelt key, a checkpoint of another
  network) with a traceback. The checks stop such a run first, with a :class:`UsageError` that
  says what to fix, and leave the work directory as it was.

Importing this module imports mmengine's runner (heavy), so ``import mmpyconv`` does not.
"""
import argparse
import difflib
import inspect
import os
import os.path as osp
import re
import sys
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .checkpoint import extract_state_dict, is_original_layout
from .compat import (accelerator_available, allow_mmengine_checkpoints, cpu_ddp_wrapper_cfg,
                     init_cpu_process_group)

__all__ = [
    'UsageError', 'DictAction', 'add_launch_args', 'parse_launch_args', 'load_config',
    'apply_common_args', 'preflight',
    'setup_launcher', 'build_runner', 'build_model', 'check_checkpoint', 'resume_checkpoint',
    'run_tool', 'apply_tta', 'add_dump_results', 'TOOLBOX_SCOPES'
]

TOOLBOX_SCOPES = ('mmpretrain', 'mmdet', 'mmseg', 'mmaction')

# Keys Runner.from_cfg reads, plus the ones the tools and configs use by convention.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'model_wrapper_cfg', 'compile',
    'custom_imports', 'tta_model', 'tta_pipeline', 'runner_type', 'vis_backends', 'sync_bn',
    'find_unused_parameters')
# Keys that a torch DataLoader or mmengine's Runner.build_dataloader take in a *_dataloader.
_DATALOADER_EXTRA = ('dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn')
_SIMILAR = 0.8


class UsageError(Exception):
    """A problem with the command or the config that the user must fix; the message says how."""


def _close(word: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean ...?)' hint for an unknown name, or ''."""
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=_SIMILAR)
    return f" (did you mean '{match[0]}'?)" if match else ''


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, swaps."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]


def _misspelling_of(word: str, known: Iterable[str]) -> Optional[str]:
    """The known name ``word`` is a slip of the keyboard away from (at most two edits), if any.

    Stricter than :func:`_close`, for places where unknown names are allowed (a config's own
    variables, new keys from --cfg-options): ``train_dataloder`` is caught, ``train_pipeline``
    (three edits from ``tta_pipeline``) is not.
    """
    if len(word) < 4:
        return None
    best = min(known, key=lambda k: _edit_distance(word, k), default=None)
    if best is not None and best != word and _edit_distance(word, best) <= 2:
        return best
    return None


# ---------------------------------------------------------------------------- config + args


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
                meant = _misspelling_of(part, node.keys())
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


def apply_tta(cfg: Config) -> None:
    """Test with the config's test-time augmentation (``--tta``), as the toolboxes' tools do.

    Uses ``tta_model`` and ``tta_pipeline`` from the config; an mmpretrain config without them
    gets mmpretrain's default (scores averaged over the image and its horizontal flip).
    """
    if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
        if cfg.default_scope != 'mmpretrain':
            raise UsageError('--tta needs tta_model and tta_pipeline in the config (see the '
                             f'{cfg.default_scope} configs that define them)')
        pipeline = list(cfg.test_dataloader.dataset.pipeline)
        cfg.setdefault('tta_model', dict(type='AverageClsScoreTTA'))
        cfg.setdefault('tta_pipeline', pipeline[:-1] + [
            dict(type='TestTimeAug',
                 transforms=[[dict(type='RandomFlip', prob=0.),
                              dict(type='RandomFlip', prob=1.)], [pipeline[-1]]])
        ])
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    tta_model = dict(cfg.tta_model)
    tta_model['module'] = cfg.model
    cfg.model = tta_model


def add_dump_results(cfg: Config, out: str) -> None:
    """Also dump the predictions to ``out`` (a .pkl file), with mmengine's DumpResults metric."""
    if not out.endswith(('.pkl', '.pickle')):
        raise UsageError(f'--out {out}: the predictions are written as a pickle; give a file '
                         'name ending in .pkl')
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    evaluators.append(dict(type='DumpResults', out_file_path=out))
    cfg.test_evaluator = evaluators


# The visualization hook of each toolbox and how it is switched on and pointed at a folder.
_VISUALIZATION_HOOKS = {
    'mmpretrain': 'VisualizationHook',
    'mmdet': 'DetVisualizationHook',
    'mmseg': 'SegVisualizationHook',
    'mmaction': 'VisualizationHook',
}


def add_visualization(cfg: Config, show_dir: str, interval: int) -> str:
    """Draw test predictions into ``show_dir`` with the toolbox's own visualization hook, as
    each toolbox's ``tools/test.py --show-dir`` does; returns the absolute folder.

    ``interval`` follows the hook: every ``interval``-th image in mmpretrain and mmaction2, the
    images of every ``interval``-th batch in mmdet and mmseg. mmseg's visualizer writes under
    ``show_dir/vis_data/vis_image``; the others write into ``show_dir`` itself.
    """
    if interval < 1:
        raise UsageError(f'--interval {interval}: give a positive number')
    scope = cfg.default_scope
    show_dir = os.path.abspath(show_dir)
    if not cfg.get('default_hooks'):
        cfg.default_hooks = {}
    hooks = cfg.default_hooks
    hook = hooks.get('visualization')
    if not hook:
        if scope not in _VISUALIZATION_HOOKS:
            raise UsageError(f'--show-dir: the config has no default_hooks.visualization, and '
                             f'default_scope={scope!r} is none of '
                             f'{", ".join(_VISUALIZATION_HOOKS)}; add the hook to the config')
        hook = dict(type=_VISUALIZATION_HOOKS[scope])
    hook = dict(hook)
    hook['interval'] = interval
    if scope == 'mmdet':
        hook.update(draw=True, test_out_dir=show_dir)
    elif scope == 'mmseg':
        # SegVisualizationHook draws through the visualizer, which saves where it is told.
        if not cfg.get('visualizer'):
            raise UsageError('--show-dir needs a visualizer in an mmseg config (e.g. from '
                             "'mmseg::_base_/default_runtime.py')")
        hook['draw'] = True
        cfg.visualizer['save_dir'] = show_dir
    else:
        hook.update(enable=True, out_dir=show_dir)
    hooks['visualization'] = hook
    return show_dir


# ---------------------------------------------------------------------------- registries


def _resolve(registries: Sequence, cfg: Dict, where: str) -> Optional[type]:
    """The class a config's ``type`` names, looked up in the default scope (or the dict's
    ``_scope_``) in each of ``registries`` in turn."""
    type_ = cfg['type']
    if not isinstance(type_, str):
        return type_ if callable(type_) else None
    known = []
    for registry in registries:
        with registry.switch_scope_and_registry(cfg.get('_scope_')) as scoped:
            cls = scoped.get(type_)
            known += list(scoped.module_dict) + list(registry.module_dict)
            scope = scoped.scope
        if cls is not None:
            return cls
    raise UsageError(f"{where}.type = {type_!r} is not registered in {scope}'s "
                     f"{' or '.join(r.name for r in registries)} registry{_close(type_, known)}: "
                     'check the spelling, or that custom_imports imports the module that '
                     'defines it')


def accepted_kwargs(cls: Callable) -> Optional[set]:
    """Keyword arguments a class (or function) takes; None if it takes any (``**kwargs``)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_kwargs(registries, cfg: Any, where: str, skip: Sequence[str] = ()) -> Optional[type]:
    """Refuse keys that the class of a typed config dict does not take (when it says which)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        return None
    if not isinstance(registries, (list, tuple)):
        registries = (registries, )
    cls = _resolve(registries, cfg, where)
    accepted = accepted_kwargs(cls) if cls is not None else None
    if accepted is None:
        return cls
    for key in cfg:
        if key in ('type', '_scope_', *skip) or key in accepted:
            continue
        name = getattr(cls, '__name__', str(cls))
        raise UsageError(f'{where}.{key}: {name} takes no argument {key!r}'
                         f'{_close(key, accepted)}')
    return cls


def _check_loop(cfg: Any, phase: str) -> None:
    """``train_cfg`` / ``val_cfg`` / ``test_cfg``: the keys of the loop the Runner builds."""
    from mmengine import runner
    from mmengine.registry import LOOPS
    if not isinstance(cfg, dict):
        return
    where = f'{phase}_cfg'
    if 'type' in cfg:
        loop = _resolve((LOOPS, ), cfg, where)
    elif phase == 'train':
        loop = runner.EpochBasedTrainLoop if cfg.get('by_epoch', True) and \
            'max_iters' not in cfg else runner.IterBasedTrainLoop
    else:
        loop = {'val': runner.ValLoop, 'test': runner.TestLoop}[phase]
    accepted = accepted_kwargs(loop)
    if accepted is None:
        return
    accepted -= {'runner', 'dataloader', 'evaluator'}
    for key in cfg:
        if key not in accepted and key not in ('type', 'by_epoch'):
            raise UsageError(f'{where}.{key}: {loop.__name__} takes no {key!r}'
                             f'{_close(key, accepted)}')


def _datasets(cfg: Dict, where: str) -> Iterator[Tuple[Dict, str]]:
    """A dataset config and the datasets its wrappers hold (RepeatDataset, ConcatDataset)."""
    if not isinstance(cfg, dict):
        return
    yield cfg, where
    if isinstance(cfg.get('dataset'), dict):
        yield from _datasets(cfg['dataset'], f'{where}.dataset')
    for i, inner in enumerate(cfg.get('datasets') or ()):
        yield from _datasets(inner, f'{where}.datasets.{i}')


def check_config_keys(cfg: Config, loaders: Sequence[str]) -> None:
    """Refuse misspelt keys: top-level, dataloaders, samplers, loops, evaluators, optimizer,
    schedulers and hooks. (Models and datasets are checked by building them, see
    :func:`build_model` and :func:`check_datasets_build`.)"""
    import torch.utils.data
    from mmengine import registry as r
    for key in cfg.keys():
        meant = None if key in RUNNER_KEYS else _misspelling_of(key, RUNNER_KEYS)
        # A config's own variables may sit near a Runner key (conv_cfg, env_cfg): only a key
        # whose Runner key is absent, or one slip from a long key, counts as a typo.
        if meant and (meant not in cfg or (_edit_distance(key, meant) == 1 and len(key) >= 8)):
            raise UsageError(f"unknown top-level config key {key!r} (did you mean '{meant}'?)")
    loader_keys = set(inspect.signature(torch.utils.data.DataLoader).parameters)
    loader_keys.update(_DATALOADER_EXTRA)
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        for key in loader_cfg:
            if key not in loader_keys:
                raise UsageError(f'{loader}.{key}: a dataloader takes no {key!r}'
                                 f'{_close(key, loader_keys)}')
        _check_kwargs(r.DATA_SAMPLERS, loader_cfg.get('sampler'), f'{loader}.sampler')
    for phase in ('train', 'val', 'test'):
        if f'{phase}_dataloader' in loaders:
            _check_loop(cfg.get(f'{phase}_cfg'), phase)
        if phase == 'train' or f'{phase}_dataloader' not in loaders:
            continue
        evaluator = cfg.get(f'{phase}_evaluator')
        metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
        for i, metric in enumerate(metrics):
            _check_kwargs((r.METRICS, r.EVALUATOR), metric, f'{phase}_evaluator'
                          if len(metrics) == 1 else f'{phase}_evaluator.{i}')
    if 'train_dataloader' in loaders:
        wrapper = cfg.get('optim_wrapper')
        if isinstance(wrapper, dict):
            _check_kwargs(r.OPTIM_WRAPPERS, wrapper, 'optim_wrapper', skip=(
                'optimizer', 'paramwise_cfg', 'constructor'))
            _check_kwargs(r.OPTIMIZERS, wrapper.get('optimizer'), 'optim_wrapper.optimizer')
        schedulers = cfg.get('param_scheduler')
        schedulers = schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]
        for i, scheduler in enumerate(schedulers):
            # convert_to_iter_based is read by the Runner, not passed to the scheduler.
            _check_kwargs(r.PARAM_SCHEDULERS, scheduler, f'param_scheduler.{i}',
                          skip=('convert_to_iter_based', ))
    for name, hook in (cfg.get('default_hooks') or {}).items():
        _check_kwargs(r.HOOKS, hook, f'default_hooks.{name}')
    for i, hook in enumerate(cfg.get('custom_hooks') or ()):
        _check_kwargs(r.HOOKS, hook, f'custom_hooks.{i}')


# ---------------------------------------------------------------------------- data


def _local(path: str) -> bool:
    return bool(path) and '://' not in path


def check_dataset_paths(cfg: Config, loaders: Sequence[str]) -> None:
    """Every local ``data_root``, ``ann_file``, ``data_prefix`` (and mmpretrain ``split``)
    folder or file the datasets of ``loaders`` read must exist."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        for dataset, where in _datasets(loader_cfg.get('dataset'), f'{loader}.dataset'):
            root = dataset.get('data_root') or ''
            if isinstance(root, str) and _local(root) and not osp.isdir(root):
                raise UsageError(
                    f"{where}.data_root = {root!r}: no such folder (looked in "
                    f"{osp.abspath(root)}). Put the dataset there (tools/data/ writes small "
                    f'ones), or point the config at it with --cfg-options '
                    f'{where}.data_root=PATH')
            paths = []
            if isinstance(dataset.get('ann_file'), str):
                paths.append(('ann_file', dataset['ann_file']))
            prefix = dataset.get('data_prefix')
            if isinstance(prefix, str):
                paths.append(('data_prefix', prefix))
            elif isinstance(prefix, dict):
                paths += [(f'data_prefix.{k}', v) for k, v in prefix.items() if isinstance(v, str)]
            if isinstance(dataset.get('split'), str) and not prefix:
                paths.append(('split', dataset['split']))
            for key, path in paths:
                if not _local(path):
                    continue
                full = path if osp.isabs(path) or not isinstance(root, str) else osp.join(
                    root, path)
                if not osp.exists(full):
                    raise UsageError(
                        f'{where}.{key} = {path!r}: {full} does not exist. Check the dataset '
                        f'under {root or "the current folder"!r} or set {where}.{key} '
                        '(--cfg-options)')


# ---------------------------------------------------------------------------- checkpoints


def _load(path: str) -> Dict:
    from mmengine.runner.checkpoint import CheckpointLoader
    allow_mmengine_checkpoints()
    if '://' not in path and not osp.isfile(path):
        raise UsageError(f'checkpoint {path!r} does not exist')
    try:
        return CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as e:  # noqa: BLE001 -- any failure to read is reported the same way
        raise UsageError(f'cannot read checkpoint {path!r}: {type(e).__name__}: {e}') from e


def check_checkpoint(model, path: str, config_path: str, purpose: str,
                     require_all: bool = True) -> None:
    """Refuse a checkpoint whose tensors do not fit ``model`` (another architecture).

    Args:
        model: the model the config builds.
        path: the checkpoint.
        config_path: for the message.
        purpose: what the checkpoint is for ('test', 'resume', 'load_from'), for the message.
        require_all: the checkpoint must hold exactly the model's tensors, with their shapes
            (testing, resuming). If False (``load_from``, e.g. fine-tuning with a new head), it
            is enough that some tensors fit.
    """
    from mmengine.model import BaseTTAModel
    if isinstance(model, BaseTTAModel):
        model = model.module
    checkpoint = _load(path)
    state = extract_state_dict(checkpoint)
    if any(k.startswith(('pyconvhead.', 'layer0.')) for k in state):
        raise UsageError(
            f"{path} is a checkpoint in the PyConvSegNet authors' original layout: convert it "
            f'for {purpose} with `python tools/convert/pyconvsegnet_to_mmseg.py {path} OUT.pth`')
    if is_original_layout(state):
        raise UsageError(
            f"{path} is a checkpoint in the PyConv authors' original layout: convert it for "
            f'{purpose} with `python tools/convert/pyconv_to_mmpretrain.py {path} OUT.pth`, or '
            "load it into a backbone with init_cfg=dict(type='PyConvPretrained', "
            "checkpoint=...)")
    expected = {k: v.shape for k, v in model.state_dict().items()}
    fitting = [k for k, shape in expected.items() if k in state and state[k].shape == shape]
    missing = [k for k in expected if k not in state and not k.endswith('num_batches_tracked')]
    shapes = [f'{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k])}'
              for k in expected if k in state and state[k].shape != expected[k]]
    unknown = [k for k in state if k not in expected]
    if require_all and not (missing or shapes or unknown):
        return
    if not require_all and fitting:
        return
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    origin = ''
    if isinstance(meta, dict) and meta.get('experiment_name'):
        origin = f' It was saved by the run {meta["experiment_name"]!r}.'
    details = []
    for label, items in (('tensors of another shape', shapes), ('model tensors missing', missing),
                         ('tensors the model does not have', unknown)):
        if items:
            shown = '; '.join(items[:3]) + ('; ...' if len(items) > 3 else '')
            details.append(f'{len(items)} {label} ({shown})')
    raise UsageError(
        f'checkpoint {path} does not fit the model of {config_path} ({purpose}): '
        + ', '.join(details) + f'.{origin} Use the config it was trained with, or the '
        'checkpoint trained with this config.')


def resume_checkpoint(cfg: Config) -> Optional[str]:
    """The checkpoint a ``resume=True`` run will load (explicit, or the work dir's latest)."""
    if not cfg.get('resume'):
        return None
    if cfg.get('load_from'):
        return cfg.load_from
    from mmengine.runner import find_latest_checkpoint
    if not osp.isdir(cfg.work_dir):
        return None
    return find_latest_checkpoint(cfg.work_dir)


# ---------------------------------------------------------------------------- preflight


def _param_names(cls: Any) -> set:
    try:
        return set(inspect.signature(cls).parameters) - {'args', 'kwargs'}
    except (TypeError, ValueError):
        return set()


def _build_error(error: Exception, registries: Sequence, what: str) -> UsageError:
    """A builder's exception as a UsageError, with a 'did you mean' for the usual slips."""
    # KeyError's str() is the repr of its message; the message itself reads better.
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if not message.strip():
        import traceback
        frame = traceback.extract_tb(error.__traceback__)[-1]
        message = (f'{type(error).__name__} at {frame.filename}:{frame.lineno}: '
                   f'{frame.line}')
    unexpected = re.findall(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'",
                            message)
    unknown = re.search(r'(\S+) is not in the (\S+) registry', message)
    if unexpected:
        name, key = unexpected[-1]
        known = set()
        for registry in registries:
            with registry.switch_scope_and_registry(None) as scoped:
                cls = scoped.get(name)
            if cls is not None:
                known = _param_names(cls)
                break
        message = f'{name} takes no argument {key!r}{_close(key, known)}'
    elif unknown:
        names = set()
        for registry in registries:
            with registry.switch_scope_and_registry(None) as scoped:
                names |= set(scoped.module_dict) | set(registry.module_dict)
        message = (f'{unknown.group(1)} is not in the {unknown.group(2)} registry'
                   f'{_close(unknown.group(1), names)}: check the spelling, or that '
                   'custom_imports imports the module that defines it')
    return UsageError(f'{what} cannot be built: {message}')


def build_model(cfg: Config):
    """The config's model, built in its toolbox's scope (as the Runner will build it)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None and isinstance(model_cfg, dict):
        model_cfg = dict(model_cfg)
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    try:
        return MODELS.build(model_cfg)
    except Exception as e:  # noqa: BLE001 -- reported with the builder's own message
        raise _build_error(e, (MODELS, ), 'the model of the config') from e


def _lazy(dataset_cfg: Dict, registry, where: str) -> bool:
    """Ask a dataset config (and the datasets it wraps) not to load its annotations.

    False when some dataset cannot be built without loading (no ``full_init``: not an mmengine
    ``BaseDataset`` or wrapper).
    """
    cls = _resolve((registry, ), dataset_cfg, where)
    if not hasattr(cls, 'full_init'):
        return False
    dataset_cfg['lazy_init'] = True
    inner = []
    if isinstance(dataset_cfg.get('dataset'), dict):
        inner.append((dataset_cfg['dataset'], f'{where}.dataset'))
    inner += [(d, f'{where}.datasets.{i}') for i, d in enumerate(dataset_cfg.get('datasets') or ())
              if isinstance(d, dict)]
    return all(_lazy(d, registry, w) for d, w in inner)


def check_datasets_build(cfg: Config, loaders: Sequence[str]) -> None:
    """Build every dataset of ``loaders`` without loading its annotations (``lazy_init``): the
    constructors check their arguments and build their pipelines, so a misspelt key there
    stops the run here."""
    import copy

    from mmengine.registry import DATASETS, TRANSFORMS
    for loader in loaders:
        dataset_cfg = (cfg.get(loader) or {}).get('dataset')
        if not isinstance(dataset_cfg, dict) or 'type' not in dataset_cfg:
            continue
        dataset_cfg = copy.deepcopy(dataset_cfg)
        if not _lazy(dataset_cfg, DATASETS, f'{loader}.dataset'):
            continue
        try:
            DATASETS.build(dataset_cfg)
        except Exception as e:  # noqa: BLE001 -- reported with the builder's own message
            raise _build_error(e, (TRANSFORMS, DATASETS), f'{loader}.dataset') from e


def preflight(cfg: Config, config_path: str, loaders: Sequence[str],
              checkpoint: Optional[str] = None) -> None:
    """All checks before the Runner is built; raises :class:`UsageError` on the first problem.

    Args:
        cfg: the prepared config.
        config_path: for messages.
        loaders: the dataloaders the run will use, e.g. ('train_dataloader', 'val_dataloader').
        checkpoint: a checkpoint to test (all tensors must fit).
    """
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    for loader in loaders:
        if loader not in cfg or cfg.get(loader) is None:
            raise UsageError(f'{config_path} has no {loader}, which this tool needs')
    check_config_keys(cfg, loaders)
    check_dataset_paths(cfg, loaders)
    check_datasets_build(cfg, loaders)
    training = 'train_dataloader' in loaders
    wrapper = (cfg.get('optim_wrapper') or {}).get('type') if training else None
    if wrapper == 'AmpOptimWrapper' and not accelerator_available():
        raise UsageError(
            'mixed precision (AmpOptimWrapper, from the config or --amp) needs a CUDA, NPU, MLU '
            'or MUSA device and this machine has none: run it on one, or drop --amp (configs '
            'that set AmpOptimWrapper are GPU recipes)')
    model = build_model(cfg)
    if checkpoint is not None:
        check_checkpoint(model, checkpoint, config_path, 'test')
    if training:
        resume_from = resume_checkpoint(cfg)
        if resume_from is not None:
            check_checkpoint(model, resume_from, config_path, 'resume')
        elif cfg.get('load_from'):
            check_checkpoint(model, cfg.load_from, config_path, 'load_from', require_all=False)


# ---------------------------------------------------------------------------- launch + run


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Start a CPU-only distributed launch before the Runner (``MMENGINE_CPU_DIST``).

    With an accelerator, or with ``--launcher none``, this does nothing and mmengine's own
    ``init_dist`` runs inside the Runner.
    """
    timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    if init_cpu_process_group(launcher, timeout_s=timeout):
        cfg.model_wrapper_cfg = cpu_ddp_wrapper_cfg(cfg.get('model_wrapper_cfg'),
                                                    cfg.get('find_unused_parameters', False))
        # DDP refuses SyncBatchNorm on CPU modules; gloo runs use per-process BN instead.
        cfg.model = _sync_bn_to_bn(cfg.model)


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


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the config's ``runner_type`` from the RUNNERS registry."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    allow_mmengine_checkpoints()
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def run_tool(main: Callable[[], Any]) -> int:
    """Run a tool's main; a :class:`UsageError` becomes a one-paragraph message and exit 2."""
    try:
        main()
    except UsageError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0
