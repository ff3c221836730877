"""Checks that run before the Runner exists, so that a bad run loses nothing.

The Runner creates the work directory, writes its log there and dumps the config over any
earlier copy as soon as it is built, then fails later (on a missing dataset, a misspelt key, a
checkpoint of another network) with a traceback. :func:`preflight` stops such a run first, with
a :class:`~mmpyconv.runner.errors.UsageError` that says what to fix, and leaves the work
directory as it was.
"""
import copy
import os.path as osp
import re
import traceback
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from ..convert import CONVERTERS, Misfit, detect_layout, extract_state_dict
from ..models.backbones.pretrained import PRETRAINED_TYPES
from .checkpoints import check_resumable, load_checkpoint_file, unreadable_reason
from .coco_check import report_coco_datasets
from .config_check import (
    check_config_keys,
    check_runner_values,
    dataset_configs,
    is_local,
    keyword_arguments,
    lookup,
    resolve_type,
    under_data_root,
)
from .errors import UsageError, did_you_mean
from .launch import accelerator_available
from .video_check import report_video_datasets

__all__ = [
    'check_paths', 'check_datasets_build', 'build_model', 'check_pretrained', 'check_checkpoint',
    'resume_checkpoint', 'preflight'
]


def _variable_for(cfg: Config, key: str, value: str) -> Optional[str]:
    """``key`` when the config has a top-level variable ``key`` holding ``value`` (which
    ``--cfg-options key=...`` sets everywhere it was used), else None."""
    return key if cfg.get(key) == value else None


def _missing_dataset_paths(cfg: Config, loaders: Sequence[str]) -> List[str]:
    """A sentence for every local ``data_root``, ``ann_file``, ``data_prefix`` (and mmpretrain
    ``split``) folder or file the datasets of ``loaders`` read that does not exist; the
    datasets that share a missing path (train and val under one ``data_root``) share its
    sentence."""
    roots: Dict[str, List[str]] = {}
    files: Dict[tuple, List[str]] = {}
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        for dataset, where in dataset_configs(loader_cfg.get('dataset'), f'{loader}.dataset'):
            root = dataset.get('data_root') or ''
            if is_local(root) and not osp.isdir(root):
                roots.setdefault(root, []).append(f'{where}.data_root')
                continue
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
                full = under_data_root(root, path)
                if is_local(path) and not osp.exists(full):
                    files.setdefault((key, path, full, root), []).append(f'{where}.{key}')
    missing = []
    for root, wheres in roots.items():
        variable = _variable_for(cfg, 'data_root', root)
        fix = f'{variable}=PATH' if variable else ' '.join(f'{w}=PATH' for w in wheres)
        missing.append(
            f"{' and '.join(wheres)} = {root!r}: no such folder (looked in "
            f'{osp.abspath(root)}). Put the dataset there (tools/data/ writes small ones), or '
            f'point the config at it with --cfg-options {fix}')
    for (key, path, full, root), wheres in files.items():
        missing.append(
            f"{' and '.join(wheres)} = {path!r}: {full} does not exist. Check the dataset "
            f'under {root or "the current folder"!r} or set {" and ".join(wheres)} '
            '(--cfg-options)')
    return missing


def _checkpoints(node, where: str):
    """(where, checkpoint) of every ``pretrained`` string and Pretrained ``init_cfg`` in a
    model config."""
    if isinstance(node, dict):
        if node.get('type') in PRETRAINED_TYPES and isinstance(node.get('checkpoint'), str):
            yield f'{where}.checkpoint', node['checkpoint']
        if isinstance(node.get('pretrained'), str):
            yield f'{where}.pretrained', node['pretrained']
        for key, value in node.items():
            yield from _checkpoints(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _checkpoints(value, f'{where}.{i}')


def _bad_checkpoints(cfg: Config) -> Tuple[List[str], List[str]]:
    """Sentences for the local checkpoint files the model config names (what ``init_weights``
    would fail on after the Runner has written its files): those that do not exist, and those
    that are not checkpoints (judged from the zip directory or first byte, not read whole)."""
    missing, unreadable = [], []
    for where, path in _checkpoints(cfg.get('model'), 'model'):
        if not is_local(path):
            continue
        if not osp.isfile(path):
            missing.append(
                f'{where} = {path!r}: no such file (looked in {osp.abspath(path)}). Put the '
                f'checkpoint there, set {where} (--cfg-options), or drop it (None) to start '
                'from random weights')
        elif unreadable_reason(path):
            unreadable.append(f'{where} = {path!r}: {unreadable_reason(path)}')
    return missing, unreadable


def check_paths(cfg: Config, loaders: Sequence[str], checkpoints: bool = True) -> None:
    """Every dataset folder or file and (with ``checkpoints``) every pretrained checkpoint the
    run will read must exist (and be a checkpoint); all that do not are named in one message."""
    missing = _missing_dataset_paths(cfg, loaders)
    unreadable: List[str] = []
    if checkpoints:
        missing_checkpoints, unreadable = _bad_checkpoints(cfg)
        missing += missing_checkpoints
    problems = missing + unreadable
    if len(problems) == 1:
        raise UsageError(problems[0])
    if problems:
        head = (f'{len(problems)} paths of the config do not exist' if not unreadable else
                f'{len(problems)} paths of the config cannot be used')
        raise UsageError(f'{head}: ' +
                         ' '.join(f'({i}) {m}' for i, m in enumerate(problems, 1)))


def check_pretrained(model) -> None:
    """Ask every module that loads a pretrained checkpoint (the PyConv backbones) whether the
    checkpoint is one it can use, before the Runner exists."""
    for module in model.modules():
        check = getattr(module, 'check_pretrained', None)
        if callable(check):
            try:
                check()
            except ValueError as e:
                raise UsageError(str(e)) from e


def _build_error(error: Exception, registries: Sequence, what: str) -> UsageError:
    """A builder's exception as a UsageError, with a 'did you mean' for the usual slips."""
    # KeyError's str() is the repr of its message; the message itself reads better.
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if not message.strip():
        frame = traceback.extract_tb(error.__traceback__)[-1]
        message = f'{type(error).__name__} at {frame.filename}:{frame.lineno}: {frame.line}'
    unexpected = re.findall(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'",
                            message)
    unknown = re.search(r'(\S+) is not in the (\S+) registry', message)
    if unexpected:
        name, key = unexpected[-1]
        cls, _, _ = lookup(registries, name)
        accepted = keyword_arguments(cls)[0] if cls is not None else ()
        message = f'{name} takes no argument {key!r}{did_you_mean(key, accepted)}'
    elif unknown:
        _, known, _ = lookup(registries, unknown.group(1))
        message = (f'{unknown.group(1)} is not in the {unknown.group(2)} registry'
                   f'{did_you_mean(unknown.group(1), known)}: check the spelling, or that '
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
    cls = resolve_type((registry, ), dataset_cfg, where)
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


# What named a checkpoint, by what it is for (messages).
_NAMED_BY = {'test': 'checkpoint', 'resume': '--resume', 'load_from': 'load_from'}


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
    checkpoint = load_checkpoint_file(path, _NAMED_BY.get(purpose, 'checkpoint'))
    state = extract_state_dict(checkpoint)
    layout = detect_layout(state)
    if layout == 'pyconvsegnet':
        raise UsageError(
            f"{path} is a checkpoint in the PyConvSegNet authors' original layout: convert it "
            f'for {purpose} with `{CONVERTERS[layout]} {path} OUT.pth`')
    if layout == 'pyconv':
        raise UsageError(
            f"{path} is a checkpoint in the PyConv authors' original layout: convert it for "
            f'{purpose} with `{CONVERTERS[layout]} {path} OUT.pth`, or load it into a backbone '
            "with init_cfg=dict(type='Pretrained', checkpoint=...)")
    misfit = Misfit.compare(state, {k: v.shape for k, v in model.state_dict().items()})
    if misfit.exact or (not require_all and misfit.fitting):
        if purpose == 'resume':
            check_resumable(checkpoint, path)
        return
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    origin = ''
    if isinstance(meta, dict) and meta.get('experiment_name'):
        origin = f' It was saved by the run {meta["experiment_name"]!r}.'
    raise UsageError(
        f'checkpoint {path} does not fit the model of {config_path} ({purpose}): '
        f'{misfit.describe()}.{origin} Use the config it was trained with, or the checkpoint '
        'trained with this config.')


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
    check_runner_values(cfg, loaders)
    check_paths(cfg, loaders)
    # COCO annotation files (mmdet): broken ones stop the run, what mmdet filters is logged.
    report_coco_datasets(cfg, loaders)
    # mmaction2's video lists: missing or empty videos, labels the head does not have.
    report_video_datasets(cfg, loaders)
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
    elif not cfg.get('resume'):
        check_pretrained(model)
    if training:
        resume_from = resume_checkpoint(cfg)
        if resume_from is not None:
            check_checkpoint(model, resume_from, config_path, 'resume')
        elif cfg.get('load_from'):
            check_checkpoint(model, cfg.load_from, config_path, 'load_from', require_all=False)
