"""Every sample of a config's datasets read through its loading transforms, before a run
(``tools/analysis/check_dataset.py``).

Each split's dataset is built as the Runner builds it, with its pipeline cut after the last
transform that reads or checks files (:func:`loading_pipeline`: ``LoadImageFromFile``,
mmseg's ``LoadAnnotations``, mmaction2's ``DecordInit``/``DecordDecode``, ``CheckSegMap``), so
no random augmentation runs and every file a run would read is decoded once. The samples are
shared out to worker processes (forked: they inherit the built datasets); a failure is reported
with the file it could not read (:func:`~mmpyconv.runner.bad_data.bad_file`), as a run reports
it.
"""
import copy
import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .bad_data import PATH_KINDS, bad_file, is_loading_transform, one_line
from .config_check import dataset_configs, is_local, under_data_root
from .errors import UsageError

__all__ = ['SPLITS', 'BadSample', 'SplitReport', 'loading_pipeline', 'check_splits']

SPLITS = ('train', 'val', 'test')
# The datasets being checked, inherited by the forked workers.
_LEAVES: List[Any] = []


@dataclass
class BadSample:
    """A file that could not be read: what it is, where, and the error."""
    split: str
    kind: str
    path: str
    error: str


@dataclass
class SplitReport:
    """What was checked of one split."""
    split: str
    checked: int = 0
    bad: List[BadSample] = field(default_factory=list)
    same_as: Optional[str] = None  # the split whose dataset this one repeats


def _type_name(transform: Any) -> str:
    type_ = transform.get('type') if isinstance(transform, dict) else None
    return type_ if isinstance(type_, str) else getattr(type_, '__name__', str(type_))


def loading_pipeline(pipeline: Sequence[Any]) -> List[Any]:
    """The transforms of ``pipeline`` up to and including the last one that reads or checks a
    sample's files (:func:`~mmpyconv.runner.bad_data.is_loading_transform`); [] if none does."""
    last = -1
    for i, transform in enumerate(pipeline):
        if is_loading_transform(_type_name(transform)):
            last = i
    return list(pipeline[:last + 1])


def _leaves(dataset: Any) -> List[Any]:
    """The datasets that hold samples (mmengine ``BaseDataset``s) in a built dataset and the
    wrappers around them (repeated ones once)."""
    from mmengine.dataset import BaseDataset
    found: List[Any] = []
    stack = [dataset]
    while stack:
        node = stack.pop()
        if isinstance(node, BaseDataset):
            if all(node is not f for f in found):
                found.append(node)
            continue
        if getattr(node, 'dataset', None) is not None:
            stack.append(node.dataset)
        stack.extend(reversed(list(getattr(node, 'datasets', None) or ())))
    return found


def _first_path(info: Dict) -> Tuple[str, str]:
    for key, kind in PATH_KINDS:
        if isinstance(info.get(key), str):
            return kind, info[key]
    return 'sample', '(no file named)'


def _check_one(dataset: Any, idx: int) -> Optional[Tuple[str, str, str]]:
    """(kind, path, error) of a sample that cannot be read, or None."""
    try:
        info = dataset.get_data_info(idx)
    except Exception as e:  # noqa: BLE001 -- reported as the sample's annotation
        return 'annotation', f'sample {idx}', one_line(e)
    try:
        result = dataset.pipeline(info)
    except Exception as e:  # noqa: BLE001 -- every failure is a finding
        kind, path = bad_file(e, info) or _first_path(info)
        return kind, path, one_line(e)
    if result is None:
        kind, path = _first_path(info)
        return kind, path, ('the loading transforms dropped it (an unreadable file, with '
                            'ignore_empty=True)')
    return None


def _check_range(task: Tuple[int, int, int]) -> Tuple[int, List[Tuple[str, str, str]]]:
    """Check samples ``start:stop`` of leaf dataset ``leaf`` (in a worker process)."""
    leaf, start, stop = task
    dataset = _LEAVES[leaf]
    found = [_check_one(dataset, idx) for idx in range(start, stop)]
    return stop - start, [f for f in found if f is not None]


def _single_threaded_opencv() -> None:
    """OpenCV without its thread pool, as mmengine sets it before DataLoader workers fork: a
    pool started here would leave the forked workers waiting on its locks."""
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(0)


def _run_tasks(tasks: List[Tuple[int, int, int]], workers: int
               ) -> List[Tuple[str, str, str]]:
    """Run the tasks with a progress bar, in ``workers`` forked processes (or here for 1)."""
    from mmengine.utils import ProgressBar
    total = sum(stop - start for _, start, stop in tasks)
    bar = ProgressBar(total)
    found: List[Tuple[str, str, str]] = []
    if workers == 1:
        results = map(_check_range, tasks)
        for count, bad in results:
            found += bad
            bar.update(count)
    else:
        _single_threaded_opencv()
        context = multiprocessing.get_context('fork')
        with context.Pool(workers) as pool:
            for count, bad in pool.imap_unordered(_check_range, tasks):
                found += bad
                bar.update(count)
    print()
    return found


def _ann_files(dataset_cfg: Dict) -> List[str]:
    files = []
    for dataset, _ in dataset_configs(dataset_cfg, 'dataset'):
        if is_local(dataset.get('ann_file')):
            files.append(under_data_root(dataset.get('data_root'), dataset['ann_file']))
    return files


def _build(cfg: Config, split: str) -> Tuple[Dict, Any]:
    """The split's dataset config with loading pipelines, and the dataset built from it (or a
    BadSample for an annotation file that cannot be read)."""
    from mmengine.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.get(f'{split}_dataloader')['dataset'])
    loading = False
    for dataset, where in dataset_configs(dataset_cfg, f'{split}_dataloader.dataset'):
        if isinstance(dataset.get('pipeline'), (list, tuple)):
            dataset['pipeline'] = loading_pipeline(dataset['pipeline'])
            loading = loading or bool(dataset['pipeline'])
    if not loading:
        raise UsageError(f'{split}_dataloader.dataset.pipeline has no transform that reads '
                         'files (Load*, *Decode, *Init): nothing to check')
    try:
        built = DATASETS.build(dataset_cfg)
        if hasattr(built, 'full_init'):
            built.full_init()
    except Exception as e:  # noqa: BLE001 -- the annotation file (or folder) is the finding
        files = _ann_files(dataset_cfg)
        path = ' or '.join(files) if files else str(dataset_cfg.get('data_root', ''))
        return dataset_cfg, BadSample(split, 'annotation file' if files else 'dataset', path,
                                      one_line(e))
    return dataset_cfg, built


def check_splits(cfg: Config, splits: Sequence[str], workers: int,
                 chunk: Optional[int] = None) -> List[SplitReport]:
    """Read every sample of the datasets of ``splits`` through their loading transforms.

    Args:
        cfg: the config (its ``default_scope`` set up, ``custom_imports`` imported).
        splits: of ``'train'``, ``'val'``, ``'test'``; each needs its ``*_dataloader``.
        workers: processes that read samples (1: this one).
        chunk: samples per task. Default: about 8 tasks per worker, at most 64 samples each.

    Returns:
        One report per split, in the order given.
    """
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    reports: List[SplitReport] = []
    seen: List[Tuple[Dict, str]] = []
    for split in splits:
        report = SplitReport(split)
        reports.append(report)
        dataset_cfg, built = _build(cfg, split)
        same = [name for seen_cfg, name in seen if seen_cfg == dataset_cfg]
        if same:
            report.same_as = same[0]
            continue
        seen.append((dataset_cfg, split))
        if isinstance(built, BadSample):
            report.bad.append(built)
            continue
        leaves = _leaves(built)
        _LEAVES[:] = leaves
        sizes = [len(leaf) for leaf in leaves]
        total = sum(sizes)
        step = chunk or max(1, min(64, total // max(1, 8 * workers)))
        tasks = [(i, start, min(start + step, size)) for i, size in enumerate(sizes)
                 for start in range(0, size, step)]
        names = ', '.join(sorted({type(leaf).__name__ for leaf in leaves}))
        print(f'{split}: {total} samples ({names}), read by {workers} '
              f'process{"es" if workers > 1 else ""}', flush=True)
        try:
            found = _run_tasks(tasks, min(workers, max(1, len(tasks))))
        finally:
            _LEAVES.clear()
        report.checked = total
        report.bad += [BadSample(split, kind, path, error) for kind, path, error in
                       sorted(found, key=lambda f: f[1])]
    return reports


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def summary(reports: Sequence[SplitReport]) -> str:
    """``'checked 42 samples, 1 bad (train: 24 checked, 1 bad; val: 18 checked, 0 bad)'``."""
    parts = []
    for r in reports:
        parts.append(f'{r.split}: the same dataset as {r.same_as}' if r.same_as else
                     f'{r.split}: {r.checked} checked, {len(r.bad)} bad')
    checked = sum(r.checked for r in reports)
    bad = sum(len(r.bad) for r in reports)
    return f'checked {checked} samples, {bad} bad ({"; ".join(parts)})'
