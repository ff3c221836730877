"""Checks of mmaction2's video lists before a run: every line names a video that is there and
not empty, with a label the model has.

mmaction2's ``VideoDataset`` reads a list of ``<file> <label>`` lines (paths relative to
``data_prefix.video``). A missing or zero-length file stops a run at the batch that meets it,
possibly hours in, with decord's error that names no dataset; a label at or above the head's
``num_classes`` becomes a CUDA assert or, on a CPU, an index error inside the loss. Both are
checked here for every line, before anything is written; the check reads the list and stats the
files, it decodes nothing (``tools/analysis/check_dataset.py`` decodes every video). What
mmaction2 does by design is left alone: a video shorter than the clip the sampler needs is
looped (``SampleFrames(out_of_bound_opt='loop')``, its default), and stated here only in the
docs (configs/pyconvaction/README.md).

Nothing here imports mmaction2: a config that does not use it needs none installed.
"""
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from .config_check import is_local, loader_datasets, lookup, under_data_root
from .errors import UsageError

__all__ = ['check_video_list', 'check_video_datasets', 'report_video_datasets']

# Problems listed per list file before the rest are counted.
_SHOWN = 5


def _video_dataset(dataset_cfg: Dict) -> Optional[type]:
    """The class of a dataset config if it is mmaction2's VideoDataset or a subclass."""
    from mmengine.registry import DATASETS
    type_ = dataset_cfg.get('type')
    cls = lookup((DATASETS, ), type_, dataset_cfg.get('_scope_'))[0] if isinstance(
        type_, str) else type_
    module = sys.modules.get('mmaction.datasets.video_dataset')
    if module is None or not isinstance(cls, type) or not issubclass(cls, module.VideoDataset):
        return None
    return cls


def check_video_list(ann_file: str, video_dir: str, num_classes: Optional[int],
                     where: str, delimiter: str = ' ') -> List[str]:
    """Problems of one ``<file> <label>`` list: a line without a label, a label that is not an
    int in ``[0, num_classes)``, a video that is missing or empty. One message per kind, naming
    the first lines and the count."""
    problems: Dict[str, List[str]] = {}
    with open(ann_file) as f:
        for number, line in enumerate(f, 1):
            fields = line.strip().split(delimiter)
            if not line.strip():
                continue
            at = f'line {number} ({fields[0]})'
            labels = fields[1:]
            if not labels:
                problems.setdefault('have no label', []).append(at)
            for label in labels:
                try:
                    value = int(label)
                except ValueError:
                    problems.setdefault('have a label that is not an int', []).append(at)
                    continue
                if value < 0 or (num_classes is not None and value >= num_classes):
                    problems.setdefault(
                        f'have a label outside 0..{num_classes - 1} (the head has num_classes='
                        f'{num_classes})' if num_classes else 'have a negative label',
                        []).append(f'{at}: {value}')
            path = osp.join(video_dir, fields[0])
            if not osp.isfile(path):
                problems.setdefault('name a video that does not exist', []).append(at)
            elif os.stat(path).st_size == 0:
                problems.setdefault('name an empty (0-byte) video', []).append(at)
    messages = []
    for kind, lines in problems.items():
        shown = '; '.join(lines[:_SHOWN]) + (f'; and {len(lines) - _SHOWN} more'
                                             if len(lines) > _SHOWN else '')
        messages.append(f'{where}: {len(lines)} line(s) of {ann_file} {kind}: {shown}. Fix or '
                        f'remove those lines (videos are looked up under {video_dir})')
    return messages


def check_video_datasets(cfg: Config, loaders: Sequence[str]) -> List[str]:
    """:func:`check_video_list` on every VideoDataset of ``loaders`` (wrapped ones included)
    whose list exists (a missing one is ``check_paths``' to report)."""
    head = (cfg.get('model') or {}).get('cls_head') or {}
    num_classes = head.get('num_classes') if isinstance(head, dict) else None
    errors: List[str] = []
    checked = set()
    for dataset, where in loader_datasets(cfg, loaders):
        if 'type' not in dataset or _video_dataset(dataset) is None:
            continue
        root = dataset.get('data_root')
        ann_file = dataset.get('ann_file')
        prefix = dataset.get('data_prefix') or {}
        if not is_local(ann_file):
            continue
        ann_file = under_data_root(root, ann_file)
        video_dir = under_data_root(root, prefix.get('video', ''))
        if not osp.isfile(ann_file) or (ann_file, video_dir) in checked:
            continue
        checked.add((ann_file, video_dir))
        errors += check_video_list(ann_file, video_dir, num_classes, where,
                                   dataset.get('delimiter', ' '))
    return errors


def report_video_datasets(cfg: Config, loaders: Sequence[str]) -> None:
    """Raise the problems of :func:`check_video_datasets` as one :class:`UsageError`."""
    errors = check_video_datasets(cfg, loaders)
    if len(errors) == 1:
        raise UsageError(errors[0])
    if errors:
        raise UsageError(f'{len(errors)} problems in the video lists: ' +
                         ' '.join(f'({i}) {e}' for i, e in enumerate(errors, 1)))
