"""Misspelt config keys, found before the Runner exists.

What counts as known is read from the code that will read the config, never from a list kept
here: the top-level keys are those mmengine's Runner reads (:func:`runner_keys`, from its
source), the keys of a typed dict (``type=...``) are the arguments of the class it names, a
dataloader's are ``torch.utils.data.DataLoader``'s. Models and datasets are checked by building
them (:mod:`mmpyconv.runner.preflight`), which also names the argument that was not taken.
"""
import inspect
import os.path as osp
import re
from functools import lru_cache
from typing import Any, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .errors import UsageError, close_match, did_you_mean, similarity

__all__ = [
    'runner_keys', 'top_level_typo', 'keyword_arguments', 'lookup', 'resolve_type',
    'check_config_keys', 'check_runner_values', 'dataset_configs', 'loader_datasets', 'is_local',
    'under_data_root'
]

# Keys read besides the Runner's: custom_imports (by mmengine's Config), runner_type (by the
# tools' build_runner). (tta_pipeline is left out on purpose: test_pipeline is 0.88 alike.)
TOOL_KEYS = ('custom_imports', 'runner_type')
# A top-level key is a typo of a Runner key whose similarity is at least TYPO_SIMILARITY when
# the config lacks that key, and at least TYPO_SIMILARITY_PRESENT when it has it (a config's
# own variables may sit near a Runner key: conv_cfg and env_cfg are 0.80 alike, models and
# model 0.91). tests/test_tools/test_config_check.py checks every config the installed
# toolboxes ship against these.
TYPO_SIMILARITY = 0.85
TYPO_SIMILARITY_PRESENT = 0.92
# What Runner.build_dataloader takes in a *_dataloader besides DataLoader's arguments.
_DATALOADER_EXTRA = ('dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn')
# Values the Runner and its loops need as whole numbers: (config key, keys in it).
_WHOLE_NUMBERS = (('train_cfg', ('max_epochs', 'max_iters', 'val_interval', 'val_begin')),
                  ('train_dataloader', ('batch_size', 'num_workers')),
                  ('val_dataloader', ('batch_size', 'num_workers')),
                  ('test_dataloader', ('batch_size', 'num_workers')))
_CFG_READ = re.compile(r"\bcfg\.get\(\s*['\"](\w+)['\"]|\bcfg\[['\"](\w+)['\"]\]")


@lru_cache()
def runner_keys() -> FrozenSet[str]:
    """The top-level keys mmengine's Runner reads (``cfg.get('x')`` / ``cfg['x']`` in its
    module's source) and those the tools read (:data:`TOOL_KEYS`)."""
    import mmengine.runner.runner as runner_module
    source = inspect.getsource(runner_module)
    return frozenset({a or b for a, b in _CFG_READ.findall(source)} | set(TOOL_KEYS))


def top_level_typo(key: str, present: Iterable[str]) -> Optional[str]:
    """The Runner key that the top-level ``key`` misspells, given the config's keys; or None."""
    known = runner_keys()
    if key in known:
        return None
    meant = close_match(key, known, TYPO_SIMILARITY)
    if meant is None:
        return None
    if meant in set(present) and similarity(key, meant) < TYPO_SIMILARITY_PRESENT:
        return None
    return meant


def keyword_arguments(cls: Any) -> Tuple[FrozenSet[str], bool]:
    """The keyword arguments a class (or function) names, and whether it takes any
    (``**kwargs``)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return frozenset(), True
    names = frozenset(p.name for p in params
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def lookup(registries: Sequence, name: str, scope: Optional[str] = None
           ) -> Tuple[Optional[type], List[str], str]:
    """``name`` looked up as the Runner will: in ``scope`` (or the default scope) of each of
    ``registries`` in turn. Returns the class (None if none has it), every name those
    registries know (for a suggestion), and the scope looked in."""
    known: List[str] = []
    scope_name = scope or ''
    for registry in registries:
        with registry.switch_scope_and_registry(scope) as scoped:
            cls = scoped.get(name)
            known += list(scoped.module_dict) + list(registry.module_dict)
            scope_name = scoped.scope
        if cls is not None:
            return cls, known, scope_name
    return None, known, scope_name


def resolve_type(registries: Sequence, cfg: Dict, where: str) -> Optional[type]:
    """The class a config's ``type`` names; a UsageError if no registry has it."""
    type_ = cfg['type']
    if not isinstance(type_, str):
        return type_ if callable(type_) else None
    cls, known, scope = lookup(registries, type_, cfg.get('_scope_'))
    if cls is None:
        raise UsageError(f"{where}.type = {type_!r} is not registered in {scope}'s "
                         f"{' or '.join(r.name for r in registries)} registry"
                         f'{did_you_mean(type_, known)}: check the spelling, or that '
                         'custom_imports imports the module that defines it')
    return cls


def _check_kwargs(registries, cfg: Any, where: str, skip: Sequence[str] = ()) -> None:
    """Refuse keys that the class of a typed config dict does not take (when it says which)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        return
    if not isinstance(registries, (list, tuple)):
        registries = (registries, )
    cls = resolve_type(registries, cfg, where)
    if cls is None:
        return
    accepted, takes_any = keyword_arguments(cls)
    if takes_any:
        return
    for key in cfg:
        if key not in ('type', '_scope_', *skip) and key not in accepted:
            name = getattr(cls, '__name__', str(cls))
            raise UsageError(f'{where}.{key}: {name} takes no argument {key!r}'
                             f'{did_you_mean(key, accepted)}')


def _check_loop(cfg: Any, phase: str) -> None:
    """``train_cfg`` / ``val_cfg`` / ``test_cfg``: the keys of the loop the Runner builds."""
    from mmengine import runner
    from mmengine.registry import LOOPS
    if not isinstance(cfg, dict):
        return
    where = f'{phase}_cfg'
    if 'type' in cfg:
        loop = resolve_type((LOOPS, ), cfg, where)
    elif phase == 'train':
        loop = runner.EpochBasedTrainLoop if cfg.get('by_epoch', True) and \
            'max_iters' not in cfg else runner.IterBasedTrainLoop
    else:
        loop = {'val': runner.ValLoop, 'test': runner.TestLoop}[phase]
    accepted, takes_any = keyword_arguments(loop)
    if takes_any:
        return
    accepted = accepted - {'runner', 'dataloader', 'evaluator'}
    for key in cfg:
        # _scope_: what inheriting a toolbox's config through `mmdet::` adds to its dicts.
        if key not in accepted and key not in ('type', 'by_epoch', '_scope_'):
            raise UsageError(f'{where}.{key}: {loop.__name__} takes no {key!r}'
                             f'{did_you_mean(key, accepted)}')


def dataset_configs(cfg: Dict, where: str) -> Iterator[Tuple[Dict, str]]:
    """A dataset config and the datasets its wrappers hold (RepeatDataset, ConcatDataset)."""
    if not isinstance(cfg, dict):
        return
    yield cfg, where
    if isinstance(cfg.get('dataset'), dict):
        yield from dataset_configs(cfg['dataset'], f'{where}.dataset')
    for i, inner in enumerate(cfg.get('datasets') or ()):
        yield from dataset_configs(inner, f'{where}.datasets.{i}')


def loader_datasets(cfg: Config, loaders: Sequence[str]) -> Iterator[Tuple[Dict, str]]:
    """:func:`dataset_configs` of the dataset of every dataloader of ``loaders`` the config
    has, each with where it is (``'val_dataloader.dataset'``, ...)."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if isinstance(loader_cfg, dict):
            yield from dataset_configs(loader_cfg.get('dataset'), f'{loader}.dataset')


def is_local(path: Any) -> bool:
    """Whether a config's path names a local file or folder (not ``s3://``, ``http://``...)."""
    return isinstance(path, str) and bool(path) and '://' not in path


def under_data_root(root: Any, path: str) -> str:
    """A dataset's ``path`` under its ``data_root``, as mmengine's datasets join them."""
    return path if osp.isabs(path) or not isinstance(root, str) or not root else osp.join(
        root, path)


def check_config_keys(cfg: Config, loaders: Sequence[str]) -> None:
    """Refuse misspelt keys: top-level, dataloaders, samplers, loops, evaluators, optimizer,
    schedulers and hooks."""
    import torch.utils.data
    from mmengine import registry as r
    present = list(cfg.keys())
    for key in present:
        meant = top_level_typo(key, present)
        if meant:
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
                                 f'{did_you_mean(key, loader_keys)}')
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
    # priority is read by the Runner when it registers a hook, not passed to the hook.
    for name, hook in (cfg.get('default_hooks') or {}).items():
        _check_kwargs(r.HOOKS, hook, f'default_hooks.{name}', skip=('priority', ))
    for i, hook in enumerate(cfg.get('custom_hooks') or ()):
        _check_kwargs(r.HOOKS, hook, f'custom_hooks.{i}', skip=('priority', ))


def check_runner_values(cfg: Config, loaders: Sequence[str]) -> None:
    """Refuse a value the Runner needs as a whole number that is not one
    (``train_cfg.max_epochs='abc'``): the loop would fail only once the run has started."""
    training = 'train_dataloader' in loaders
    for section, keys in _WHOLE_NUMBERS:
        if section.endswith('_dataloader') and section not in loaders or \
                section == 'train_cfg' and not training:
            continue
        values = cfg.get(section)
        if not isinstance(values, dict):
            continue
        for key in keys:
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UsageError(f'{section}.{key} = {value!r}: the Runner needs a whole number '
                                 f'there; set it in the config or with --cfg-options '
                                 f'{section}.{key}=N')
    for name, hook in (cfg.get('default_hooks') or {}).items():
        interval = hook.get('interval') if isinstance(hook, dict) else None
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int)):
            raise UsageError(f'default_hooks.{name}.interval = {interval!r}: a hook interval is a '
                             'whole number of iterations or epochs')
