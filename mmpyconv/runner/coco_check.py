"""COCO annotation files checked before the Runner exists.

mmdet's ``CocoDataset`` reads its annotation file when the Runner builds the dataloader, after
the work directory, the log and the config dump are written, and it is lenient in ways that
hide mistakes: an annotation of an unknown category or image is dropped without a word, and a
missing image file stops the run when a batch first reaches it. :func:`check_coco_datasets`
reads the annotation file of every dataset of the run whose type is ``CocoDataset`` (or a
subclass) and returns

- errors, which stop the run (:func:`report_coco_datasets` raises them as one
  :class:`~mmpyconv.runner.errors.UsageError`), and
- notes on what mmdet filters by itself (``CocoDataset.parse_data_info`` and ``filter_data``),
  which are logged: images without annotations, degenerate boxes, boxes outside their image.

Nothing here imports mmdet: a config that does not use it needs no mmdet installed.
"""
import json
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from mmengine.config import Config

from .config_check import is_local, loader_datasets, lookup, under_data_root
from .errors import UsageError

__all__ = ['check_coco_file', 'check_coco_datasets', 'report_coco_datasets']

# How many ids or file names a message lists before "and N more".
SHOWN = 5
# The keys mmdet's CocoDataset reads from every image and annotation entry.
IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
ANNOTATION_KEYS = ('id', 'image_id', 'category_id', 'bbox', 'area')
NUMBERS = ('width', 'height', 'area')


def _listing(items: Sequence[Any]) -> str:
    """``'3, 7, 9'``, or the first :data:`SHOWN` and ``'and N more'``."""
    shown = ', '.join(str(item) for item in items[:SHOWN])
    return shown if len(items) <= SHOWN else f'{shown} and {len(items) - SHOWN} more'


def _sorted(values: Iterable[Any]) -> List[Any]:
    """Distinct values in order (ids are numbers in COCO files, but need not be)."""
    values = set(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _plural(count: int, one: str, many: str) -> str:
    """``'1 box'`` or ``'2 boxes'``: ``count`` and the words that agree with it."""
    return f'{count} {one if count == 1 else many}'


def _named(kind: str, ids: Sequence[Any]) -> str:
    """``'annotation id 7'`` or ``'annotation ids 7, 9'``."""
    return f'{kind} id {ids[0]}' if len(ids) == 1 else f'{kind} ids {_listing(ids)}'


def _annotations(entries: Sequence[Dict], verb: Tuple[str, str]) -> str:
    """``'annotation id 7 names'`` or ``'3 annotations (ids 7, 8, 9) name'``."""
    if len(entries) == 1:
        return f'annotation id {entries[0]["id"]} {verb[0]}'
    return f'{len(entries)} annotations (ids {_listing([e["id"] for e in entries])}) {verb[1]}'


def _is_number(value: Any) -> bool:
    # JSON numbers load as int or float; exact type tests keep 860k annotations fast.
    return type(value) in (int, float)


def _is_box(bbox: Any) -> bool:
    return (type(bbox) in (list, tuple) and len(bbox) == 4 and _is_number(bbox[0])
            and _is_number(bbox[1]) and _is_number(bbox[2]) and _is_number(bbox[3]))


def _lacking(entries: Iterable[Any], keys: Sequence[str], kind: str) -> List[str]:
    """``'<kind> <id or #index>: <missing keys>'`` for every entry that lacks one of ``keys``
    (or has a bbox that is not four numbers, a size or area that is not a number)."""
    required = set(keys)
    numbers = [k for k in NUMBERS if k in required]
    found = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            found.append(f'{kind} #{index}: not a dict')
            continue
        missing = [k for k in keys if k not in entry] if not entry.keys() >= required else []
        if 'bbox' in required and 'bbox' in entry and not _is_box(entry['bbox']):
            missing.append('bbox as [x, y, width, height]')
        missing += [f'{k} as a number' for k in numbers
                    if k in entry and not _is_number(entry[k])]
        if missing:
            name = f'id {entry["id"]}' if 'id' in entry else f'#{index}'
            found.append(f'{kind} {name}: {", ".join(missing)}')
    return found


def _missing_files(images: Sequence[Dict], img_dir: str) -> List[Dict]:
    """The image entries whose file is not under ``img_dir``: one listing per folder, not one
    stat per image (COCO's training split lists 118k images)."""
    listed: Dict[str, Set[str]] = {}
    missing = []
    for image in images:
        path = osp.join(img_dir, str(image['file_name']))
        folder, name = osp.split(path)
        if folder not in listed:
            listed[folder] = set(os.listdir(folder)) if osp.isdir(folder) else set()
        if name not in listed[folder]:
            missing.append(image)
    return missing


def _empty_images_note(count: int, ids: str, filter_empty_gt: bool, test_mode: bool) -> str:
    if test_mode:
        fate = 'the dataset keeps them (test_mode: no filtering), as images without objects'
    elif filter_empty_gt:
        fate = 'mmdet leaves them out (filter_cfg.filter_empty_gt=True)'
    else:
        fate = ('mmdet trains on them as background only (filter_cfg.filter_empty_gt is off; '
                'set it to leave them out)')
    return f'{_plural(count, "image", "images")} without any annotation ({ids}): {fate}'


def check_coco_file(ann_file: str, img_dir: Optional[str], classes: Optional[Sequence[str]],
                    filter_empty_gt: bool = False, test_mode: bool = False,
                    where: str = 'dataset') -> Tuple[List[str], List[str]]:
    """Check one COCO annotation file as mmdet's ``CocoDataset`` will read it.

    Args:
        ann_file (str): the annotation file (a local JSON file).
        img_dir (str, optional): the folder of the images (the dataset's ``data_prefix['img']``
            joined to its ``data_root``); None skips the check that the image files exist.
        classes (Sequence[str], optional): the dataset's ``metainfo['classes']``; None skips
            the check that they are categories of the file.
        filter_empty_gt (bool): the dataset's ``filter_cfg.filter_empty_gt``. Default: False.
        test_mode (bool): the dataset's ``test_mode`` (no filtering). Default: False.
        where (str): the config path of the dataset, for messages. Default: 'dataset'.

    Returns:
        Tuple[List[str], List[str]]: errors (a sentence each, naming the file, the ids and what
        to change) and notes (what mmdet drops or keeps by itself, with counts).
    """
    head = f'{ann_file} ({where})'
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        return [f'{head} cannot be read as JSON ({e}): CocoDataset reads a COCO annotation '
                'file (images, annotations, categories)'], []
    if not isinstance(data, dict) or not all(
            isinstance(data.get(key), list) for key in ('images', 'categories')) or not \
            isinstance(data.get('annotations', []), list):
        return [f'{head} is not a COCO annotation file: it needs the lists "images", '
                '"categories" and (for training) "annotations"'], []

    errors: List[str] = []
    malformed = (_lacking(data['images'], IMAGE_KEYS, 'image')
                 + _lacking(data['categories'], ('id', 'name'), 'category')
                 + _lacking(data.get('annotations', []), ANNOTATION_KEYS, 'annotation'))
    if malformed:
        entries = 'entry lacks' if len(malformed) == 1 else 'entries lack'
        return [f'{head}: {len(malformed)} {entries} keys that CocoDataset reads '
                f'({"; ".join(malformed[:SHOWN])}{"; ..." if len(malformed) > SHOWN else ""}): '
                'add them, as in COCO\'s instances_*.json'], []
    images = {image['id']: image for image in data['images']}
    category_ids = {category['id'] for category in data['categories']}
    annotations = data.get('annotations', [])

    counts = defaultdict(int)
    for ann in annotations:
        counts[ann['id']] += 1
    repeated = [ann_id for ann_id, n in counts.items() if n > 1]
    if repeated:
        errors.append(
            f'{head}: {_named("annotation", repeated)} '
            f'{"occurs" if len(repeated) == 1 else "occur"} more than once: give every '
            'annotation its own id (CocoDataset asserts that they are unique when it loads the '
            'file)')
    unknown_category = [ann for ann in annotations if ann['category_id'] not in category_ids]
    if unknown_category:
        named = _sorted(ann['category_id'] for ann in unknown_category)
        errors.append(
            f'{head}: {_annotations(unknown_category, ("names", "name"))} category_id '
            f'{_listing(named)}, which is not among the file\'s categories '
            f'({_listing(_sorted(category_ids))}): fix the category_id or add the '
            'category (mmdet would drop such annotations without a word)')
    unknown_image = [ann for ann in annotations if ann['image_id'] not in images]
    if unknown_image:
        named = _sorted(ann['image_id'] for ann in unknown_image)
        errors.append(
            f'{head}: {_annotations(unknown_image, ("names", "name"))} image_id '
            f'{_listing(named)}, which is not among the file\'s images: fix the image_id or '
            'add the image entry (mmdet reads annotations image by image and would never see '
            'such annotations)')
    if img_dir is not None:
        missing = _missing_files(data['images'], img_dir)
        if missing:
            shown = [f'{image["file_name"]} (image id {image["id"]})' for image in missing]
            errors.append(
                f'{head}: {len(missing)} of the {_plural(len(images), "image", "images")} it lists '
                f'{"does" if len(missing) == 1 else "do"} not exist under {img_dir}: '
                f'{_listing(shown)}; put them there or point data_prefix.img at their folder '
                '(training would stop with FileNotFoundError when a batch first reaches one)')
    if classes is not None:
        names = {category['name'] for category in data['categories']}
        absent = [name for name in classes if name not in names]
        if absent:
            errors.append(
                f'{head}: the dataset\'s classes {_listing([repr(n) for n in absent])} are '
                f'not category names of the file ({_listing(_sorted(repr(n) for n in names))}): '
                'set metainfo=dict(classes=...) to the names of the categories to train on '
                '(mmdet would find no objects of those classes, and the labels of the others '
                'would no longer match their names)')
    return errors, _box_notes(head, annotations, images, category_ids, filter_empty_gt,
                              test_mode)


def _box_notes(head: str, annotations: Sequence[Dict], images: Dict[Any, Dict],
               category_ids: Set[Any], filter_empty_gt: bool, test_mode: bool) -> List[str]:
    """What ``CocoDataset.parse_data_info`` and ``filter_data`` drop or keep by themselves."""
    annotated = {ann['image_id'] for ann in annotations}
    empty = [image_id for image_id in images if image_id not in annotated]
    degenerate, outside, partly = [], [], []
    kept_box = set()
    for ann in annotations:
        image = images.get(ann['image_id'])
        if image is None or ann['category_id'] not in category_ids or ann.get('ignore'):
            continue
        x, y, w, h = ann['bbox']
        width, height = image['width'], image['height']
        if w < 1 or h < 1 or ann['area'] <= 0:
            degenerate.append(ann)
        elif min(x + w, width) <= max(x, 0) or min(y + h, height) <= max(y, 0):
            outside.append(ann)
        else:
            kept_box.add(ann['image_id'])
            if x < 0 or y < 0 or x + w > width or y + h > height:
                partly.append(ann)
    notes = []
    if empty:
        notes.append(f'{head}: ' + _empty_images_note(len(empty), _named('image', empty),
                                                       filter_empty_gt, test_mode))
    if degenerate:
        notes.append(
            f'{head}: {_plural(len(degenerate), "box", "boxes")} under 1 pixel wide or high or '
            f'with area <= 0 ({_named("annotation", [a["id"] for a in degenerate])}): mmdet '
            'drops them')
    if outside:
        notes.append(
            f'{head}: {_plural(len(outside), "box", "boxes")} wholly outside the image '
            f'({_named("annotation", [a["id"] for a in outside])}): mmdet drops them')
    if partly:
        notes.append(
            f'{head}: {_plural(len(partly), "box", "boxes")} partly outside the image '
            f'({_named("annotation", [a["id"] for a in partly])}): the dataset keeps them as '
            'written; the pipeline\'s Resize clips them to the image (clip_object_border=True, '
            'its default)')
    emptied = _sorted({ann['image_id'] for ann in degenerate + outside} - kept_box)
    if emptied and not test_mode:
        notes.append(
            f'{head}: {_plural(len(emptied), "image keeps", "images keep")} no box once those '
            f'are dropped ({_named("image", emptied)}): filter_cfg.filter_empty_gt does not '
            'leave them out (it looks at the annotations, not at the boxes kept), so they '
            'train as background only')
    return notes


def _coco_dataset(dataset_cfg: Dict) -> Optional[type]:
    """The class of a dataset config if it is mmdet's CocoDataset or a subclass, else None."""
    from mmengine.registry import DATASETS
    type_ = dataset_cfg.get('type')
    if isinstance(type_, str):
        cls, _, _ = lookup((DATASETS, ), type_, dataset_cfg.get('_scope_'))
    else:
        cls = type_
    # A class can only derive from mmdet's CocoDataset once mmdet is imported (the registry
    # imports it for a config in mmdet's scope), so a config without mmdet imports nothing.
    coco = sys.modules.get('mmdet.datasets.coco')
    if coco is None or not isinstance(cls, type) or not issubclass(cls, coco.CocoDataset):
        return None
    return cls


def check_coco_datasets(cfg: Config, loaders: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Check the annotation file of every COCO-format dataset of ``loaders`` (wrapped ones
    included) with :func:`check_coco_file`; a file that does not exist is left to
    ``check_paths``.

    Returns:
        Tuple[List[str], List[str]]: the errors and the notes of all files.
    """
    errors: List[str] = []
    notes: List[str] = []
    checked = set()
    for dataset, where in loader_datasets(cfg, loaders):
        if 'type' not in dataset:
            continue
        cls = _coco_dataset(dataset)
        ann_file = dataset.get('ann_file')
        if cls is None or not is_local(ann_file):
            continue
        root = dataset.get('data_root')
        ann_file = under_data_root(root, ann_file)
        if not osp.isfile(ann_file):
            continue
        prefix = dataset.get('data_prefix')
        img_dir = None
        if isinstance(prefix, dict) and isinstance(prefix.get('img'), str):
            img_dir = under_data_root(root, prefix['img'])
            if '://' in img_dir:
                img_dir = None
        else:
            errors.append(f"{where}.data_prefix has no 'img': CocoDataset joins every "
                          'file_name to data_prefix.img; set data_prefix=dict(img=FOLDER) '
                          '(relative to data_root)')
        metainfo = dataset.get('metainfo')
        classes = metainfo.get('classes') if isinstance(metainfo, dict) else None
        if classes is None:
            classes = cls.METAINFO.get('classes')
        filter_cfg = dataset.get('filter_cfg') or {}
        key = (ann_file, img_dir, tuple(classes or ()),
               bool(filter_cfg.get('filter_empty_gt')), bool(dataset.get('test_mode')))
        if key in checked:
            continue
        checked.add(key)
        file_errors, file_notes = check_coco_file(
            ann_file, img_dir, classes, key[3], key[4], where)
        errors += file_errors
        notes += file_notes
    return errors, notes


def report_coco_datasets(cfg: Config, loaders: Sequence[str]) -> None:
    """Log the notes of :func:`check_coco_datasets`; raise its errors as one
    :class:`UsageError`."""
    from mmengine.logging import print_log
    errors, notes = check_coco_datasets(cfg, loaders)
    for note in notes:
        print_log(note, logger='current')
    if len(errors) == 1:
        raise UsageError(errors[0])
    if errors:
        raise UsageError(f'{len(errors)} problems in the COCO annotation files: ' +
                         ' '.join(f'({i}) {e}' for i, e in enumerate(errors, 1)))
