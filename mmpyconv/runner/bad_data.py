"""Unreadable data met during a run stops it with one line: the file, the dataset, what to do.

Without this, a truncated image, a garbage mask or a broken video stops a run with a traceback
from deep inside the data pipeline (mmcv's ``LoadImageFromFile``, mmseg's ``LoadAnnotations``,
decord's ``DECORDError``), often from a DataLoader worker, where the file is at best one line
among forty. :func:`data_guard` wraps mmengine's ``BaseDataset.__getitem__`` for the duration
of a run: a failure inside a loading transform (``Load*``, ``*Decode``, ``*Init``, ``Check*``),
or one whose message names a file of the sample, becomes a :class:`BadDataError` naming the
file, its kind, the dataset class and its dataloader, and ``tools/analysis/check_dataset.py``.
Other failures (a bug in an augmentation) pass unchanged. The tools' Runner reports an
annotation file that cannot be read the same way (:func:`annotation_failure`). The tools'
``--debug`` leaves all of it out, for the traceback.

A :class:`BadDataError` raised in a DataLoader worker comes back to the main process as torch
re-creates it, from the worker's formatted traceback; the class reads its own message back out
of that text, so the one line survives ``num_workers > 0``.
"""
import contextlib
import functools
import os.path as osp
from typing import Any, Dict, Iterator, Optional, Tuple

from .errors import UsageError
from .overrides import format_value

__all__ = [
    'BadDataError', 'LOADER_MARK', 'is_loading_transform', 'one_line', 'bad_file',
    'sample_failure', 'annotation_failure', 'mark_datasets', 'data_guard'
]

# The attribute that names the dataloader of a dataset (set by the tools' Runner).
LOADER_MARK = '_mmpyconv_dataloader'
# The keys of a sample that name a file, and what the file is, in the order they are preferred
# when a message names none of them.
PATH_KINDS = (('img_path', 'image'), ('seg_map_path', 'segmentation mask'),
              ('filename', 'video'), ('frame_dir', 'frame folder'), ('audio_path', 'audio file'))
CHECK_TOOL = 'tools/analysis/check_dataset.py'
_STATE: Dict[str, Any] = {'config': None, 'options': '', 'active': False}


class BadDataError(UsageError):
    """A sample's file cannot be read: the run stops with this one line (exit status 1)."""

    exit_status = 1

    def __init__(self, message: str):
        # Re-created from a DataLoader worker, the message is torch's: 'Caught BadDataError in
        # DataLoader worker process 0.\nOriginal Traceback ...\n<module>.BadDataError: <ours>'.
        marker = f'{type(self).__name__}: '
        if 'Original Traceback' in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def is_loading_transform(name: str) -> bool:
    """Whether a transform (by class name) reads or checks a sample's files: ``Load*`` (mmcv,
    mmseg, mmdet), ``*Decode`` and ``*Init`` (mmaction2's video readers), ``Check*``
    (mmpyconv's ``CheckSegMap``)."""
    return name.startswith(('Load', 'Check')) or 'Decode' in name or name.endswith('Init')


def one_line(error: BaseException, limit: int = 200) -> str:
    """``'TypeName: first line of the message'``, cut at ``limit`` characters."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else ''
    if len(text) > limit:
        text = text[:limit].rstrip() + '...'
    return f'{type(error).__name__}: {text}' if text else type(error).__name__


def _chain_text(error: BaseException) -> str:
    """The messages of an exception and of those it was raised from."""
    texts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts.append(str(error))
        error = error.__cause__ or error.__context__
    return '\n'.join(texts)


def _failing_transform(error: BaseException) -> Tuple[Optional[Any], Optional[dict]]:
    """The innermost loading transform on the traceback of ``error`` and the sample (its
    ``results``) it was given; (None, None) when no loading transform failed."""
    transform, results = None, None
    tb = error.__traceback__
    while tb is not None:
        local = tb.tb_frame.f_locals
        owner = local.get('self')
        if owner is not None and callable(getattr(owner, 'transform', None)) and \
                is_loading_transform(type(owner).__name__):
            if owner is not transform:
                transform, results = owner, None
            if isinstance(local.get('results'), dict):
                results = local['results']
        tb = tb.tb_next
    return transform, results


def bad_file(error: BaseException, sample: Optional[dict]) -> Optional[Tuple[str, str]]:
    """(what the file is, its path) that ``error`` failed to read, or None when the error is
    not one of reading a file.

    Args:
        error: what a dataset's pipeline raised (with its traceback).
        sample: the sample's data info (``dataset.get_data_info(idx)``), used when the
            traceback holds no loading transform's ``results``.
    """
    transform, results = _failing_transform(error)
    info = results if results is not None else (sample or {})
    paths = [(key, kind, info[key]) for key, kind in PATH_KINDS if isinstance(info.get(key), str)]
    text = _chain_text(error)
    for _, kind, path in paths:
        if path and path in text:
            return kind, path
    if transform is None:
        return None
    name = type(transform).__name__
    if 'Annotation' in name:
        wanted = 'seg_map_path' if 'seg_map_path' in info else 'img_path'
    elif name.startswith(('Decord', 'PyAV', 'OpenCV')) or 'Video' in name:
        wanted = 'filename'
    elif 'Frame' in name:
        wanted = 'frame_dir'
    else:
        wanted = 'img_path'
    for key, kind, path in paths:
        if key == wanted:
            if 'Annotation' in name and key == 'img_path':
                kind = 'annotations of the image'
            return kind, path
    if paths:
        return paths[0][1], paths[0][2]
    return 'sample', f'(no file named in {sorted(info)})'


def _dataset_name(dataset: Any) -> str:
    loader = getattr(dataset, LOADER_MARK, None)
    name = type(dataset).__name__
    return f'{name} of {loader}' if loader else name


def _check_command() -> str:
    """The check_dataset command for the run's config and overrides."""
    return f'python {CHECK_TOOL} {_STATE["config"] or "CONFIG"}{_STATE.get("options") or ""}'


def _advice(dataset: Any) -> str:
    ann_file = getattr(dataset, 'ann_file', None)
    entry = f' (and its entry in {ann_file})' if isinstance(ann_file, str) and ann_file else ''
    return (f'find every unreadable file with `{_check_command()}`, then replace or remove '
            f'it{entry}; --debug shows the traceback')


def sample_failure(dataset: Any, idx: int, error: BaseException) -> Optional[str]:
    """The one-line message for a sample that failed to load, or None when ``error`` is not
    a failure to read its files."""
    try:
        sample = dataset.get_data_info(idx)
    except Exception:  # noqa: BLE001 -- the traceback's results, or nothing, name the file
        sample = None
    found = bad_file(error, sample)
    if found is None:
        return None
    kind, path = found
    return (f'cannot read the {kind} {path} of {_dataset_name(dataset)} ({one_line(error)}): '
            f'{_advice(dataset)}')


def _reading_annotations(error: BaseException) -> bool:
    """Whether ``error`` came from a dataset reading its annotation file (the methods every
    toolbox's datasets read it in)."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in ('load_data_list', 'parse_data_info', 'full_init'):
            return True
        tb = tb.tb_next
    return False


def annotation_failure(dataloader: Any, loader: Optional[str],
                       error: BaseException) -> Optional[str]:
    """The one-line message for a dataloader whose dataset failed to read its annotation file
    (a local file that exists: a missing one is the preflight's), or None: no guard active,
    not a failure to read annotations, or no such file."""
    from .config_check import dataset_configs, is_local, under_data_root
    if not _STATE['active'] or not isinstance(dataloader, dict) or \
            not _reading_annotations(error):
        return None
    files = []
    for dataset, _ in dataset_configs(dataloader.get('dataset'), 'dataset'):
        ann_file = dataset.get('ann_file')
        if is_local(ann_file):
            path = under_data_root(dataset.get('data_root'), ann_file)
            if osp.isfile(path):
                type_ = dataset.get('type')
                files.append((getattr(type_, '__name__', type_), path))
    if not files:
        return None
    names = ' or '.join(path for _, path in files)
    where = f'{files[-1][0]} of {loader}' if loader else str(files[-1][0])
    return (f'cannot read the annotation file {names} of {where} ({one_line(error)}): fix or '
            f'regenerate it; `{_check_command()}` checks every split before a run')


def mark_datasets(dataset: Any, loader: Optional[str]) -> None:
    """Name the dataloader of a dataset and of the datasets it wraps (for messages)."""
    if loader is None or dataset is None:
        return
    try:
        setattr(dataset, LOADER_MARK, loader)
    except AttributeError:
        return
    mark_datasets(getattr(dataset, 'dataset', None), loader)
    for inner in getattr(dataset, 'datasets', None) or ():
        mark_datasets(inner, loader)


@contextlib.contextmanager
def data_guard(config_path: str, enabled: bool = True,
               cfg_options: Optional[Dict[str, Any]] = None) -> Iterator[None]:
    """Within the block, a dataset that fails to read a file raises :class:`BadDataError`
    (see the module docstring; the tools' Runner turns a failure to read an annotation file
    into one, through :func:`annotation_failure`); ``enabled=False`` (``--debug``) changes
    nothing. ``cfg_options`` (the run's ``--cfg-options``) go into the check command the
    message suggests."""
    if not enabled:
        yield
        return
    from mmengine.dataset import BaseDataset
    get_item = BaseDataset.__getitem__

    @functools.wraps(get_item)
    def guarded_get_item(self, idx):
        try:
            return get_item(self, idx)
        except UsageError:
            raise
        except Exception as error:
            message = sample_failure(self, idx, error)
            if message is None:
                raise
            raise BadDataError(message) from error

    before = dict(_STATE)
    options = ' '.join(f'{k}={format_value(v)}' for k, v in (cfg_options or {}).items())
    _STATE.update(config=config_path, active=True,
                  options=f' --cfg-options {options}' if options else '')
    BaseDataset.__getitem__ = guarded_get_item
    try:
        yield
    finally:
        BaseDataset.__getitem__ = get_item
        _STATE.update(before)
