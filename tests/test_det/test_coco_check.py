"""mmpyconv/runner/coco_check.py: broken COCO annotation files stop a run before the Runner
writes anything, and what mmdet filters by itself is reported as notes.

Each case breaks a copy of the annotation file of a tiny dataset written by
tools/data/make_tiny_coco.py; one case runs tools/train.py's main on an mmdet config.
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config

from mmpyconv.runner import UsageError, run_tool
from mmpyconv.runner.coco_check import check_coco_datasets, report_coco_datasets

from tool_harness import ROOT, load_tool

tiny_coco = load_tool('data/make_tiny_coco.py')
train_tool = load_tool('train.py')
CLASSES = tiny_coco.CLASSES
NUM_TRAIN, NUM_VAL = 6, 3


@pytest.fixture(autouse=True)
def mmdet_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture
def root(tmp_path):
    folder = str(tmp_path / 'tiny_coco')
    tiny_coco.write_dataset(folder, NUM_TRAIN, NUM_VAL, 64, seed=0)
    return folder


def annotations(root, split='train'):
    with open(os.path.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def broken(root, edit, name='broken.json'):
    """A copy of the training annotation file, changed by ``edit``; its path under root."""
    coco = annotations(root)
    edit(coco)
    with open(os.path.join(root, 'annotations', name), 'w') as f:
        json.dump(coco, f)
    return f'annotations/{name}'


def dataset_cfg(root, ann_file='annotations/instances_train.json', **overrides):
    cfg = dict(type='CocoDataset', data_root=root, ann_file=ann_file,
               data_prefix=dict(img='train/'), metainfo=dict(classes=CLASSES),
               filter_cfg=dict(filter_empty_gt=True), pipeline=[])
    cfg.update(overrides)
    return cfg


def check(dataset):
    return check_coco_datasets(Config(dict(train_dataloader=dict(dataset=dataset))),
                               ['train_dataloader'])


def annotation_indices(root):
    """The index in the file of the annotation of an image that has only that one, and the
    index of an annotation of an image that has more."""
    per_image = {}
    for index, ann in enumerate(annotations(root)['annotations']):
        per_image.setdefault(ann['image_id'], []).append(index)
    alone = next(indices[0] for indices in per_image.values() if len(indices) == 1)
    among_others = next(indices[0] for indices in per_image.values() if len(indices) > 1)
    return alone, among_others


def test_a_clean_dataset_passes(root):
    assert check(dataset_cfg(root)) == ([], [])
    assert check(dataset_cfg(root, 'annotations/instances_val.json', test_mode=True,
                             data_prefix=dict(img='val/'))) == ([], [])


def test_unknown_category(root):
    def edit(coco):
        coco['annotations'][1]['category_id'] = 9
    errors, notes = check(dataset_cfg(root, broken(root, edit)))
    assert len(errors) == 1 and not notes
    for fragment in ('broken.json', 'train_dataloader.dataset', 'annotation id 2 names',
                     'category_id 9', "not among the file's categories "
                     f'({", ".join(str(i + 1) for i in range(len(CLASSES)))})',
                     'fix the category_id'):
        assert fragment in errors[0], errors[0]


def test_unknown_image(root):
    def edit(coco):
        coco['annotations'][2]['image_id'] = 99
        coco['annotations'][4]['image_id'] = 98
    errors, _ = check(dataset_cfg(root, broken(root, edit)))
    assert len(errors) == 1
    for fragment in ('broken.json', '2 annotations (ids 3, 5) name image_id 98, 99',
                     "not among the file's images", 'fix the image_id'):
        assert fragment in errors[0], errors[0]


def test_missing_image_file(root):
    os.remove(os.path.join(root, 'train', 'train_00004.png'))
    errors, _ = check(dataset_cfg(root))
    assert len(errors) == 1
    for fragment in ('instances_train.json', f'1 of the {NUM_TRAIN} images it lists does not '
                     'exist under', os.path.join(root, 'train'),
                     'train_00004.png (image id 5)', 'data_prefix.img'):
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize('overrides, fate', [
    (dict(), 'mmdet leaves them out (filter_cfg.filter_empty_gt=True)'),
    (dict(filter_cfg=None), 'mmdet trains on them as background only'),
    (dict(test_mode=True), 'the dataset keeps them (test_mode'),
])
def test_image_without_annotations(root, overrides, fate):
    def edit(coco):
        coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] != 2]
    errors, notes = check(dataset_cfg(root, broken(root, edit), **overrides))
    assert not errors
    assert len(notes) == 1
    for fragment in ('broken.json', '1 image without any annotation (image id 2)', fate):
        assert fragment in notes[0], notes[0]


def test_zero_area_box(root):
    alone, among_others = annotation_indices(root)

    def edit(coco):
        coco['annotations'][alone]['bbox'][2] = 0
        coco['annotations'][among_others]['bbox'][3] = -4
    errors, notes = check(dataset_cfg(root, broken(root, edit)))
    assert not errors
    coco = annotations(root)
    ids = sorted(coco['annotations'][i]['id'] for i in (alone, among_others))
    assert f'2 boxes under 1 pixel wide or high or with area <= 0 (annotation ids {ids[0]}, ' \
        f'{ids[1]}): mmdet drops them' in notes[0], notes
    # filter_empty_gt looks at the annotations, so the image whose only box is dropped stays.
    image_id = coco['annotations'][alone]['image_id']
    assert f'1 image keeps no box once those are dropped (image id {image_id})' in notes[-1]
    assert 'filter_cfg.filter_empty_gt does not leave them out' in notes[-1]


def test_boxes_outside_the_image(root):
    def edit(coco):
        coco['annotations'][0]['bbox'][0] = 200
        coco['annotations'][1]['bbox'][1] = -3
    errors, notes = check(dataset_cfg(root, broken(root, edit)))
    assert not errors
    text = '\n'.join(notes)
    assert '1 box wholly outside the image (annotation id 1): mmdet drops them' in text
    assert '1 box partly outside the image (annotation id 2): the dataset keeps them as ' \
        "written; the pipeline's Resize clips them" in text


def test_duplicate_ids_and_missing_keys(root):
    def duplicate(coco):
        coco['annotations'][3]['id'] = coco['annotations'][5]['id'] = 4

    def lacking(coco):
        del coco['annotations'][1]['area']
        coco['images'][0]['width'] = '64'
    errors, _ = check(dataset_cfg(root, broken(root, duplicate)))
    assert 'annotation id 4 occurs more than once' in errors[0], errors
    errors, _ = check(dataset_cfg(root, broken(root, lacking, 'lacking.json')))
    assert len(errors) == 1
    for fragment in ('lacking.json', '2 entries lack keys that CocoDataset reads',
                     'image id 1: width as a number', 'annotation id 2: area'):
        assert fragment in errors[0], errors[0]


def test_classes_and_data_prefix_of_the_config(root):
    errors, _ = check(dataset_cfg(root, metainfo=dict(classes=('circle', 'hexagon'))))
    assert "the dataset's classes 'hexagon' are not category names of the file " \
        f'({", ".join(repr(name) for name in sorted(CLASSES))})' in errors[0], errors
    # Without metainfo, CocoDataset looks for COCO's 80 classes.
    errors, _ = check(dataset_cfg(root, metainfo=None))
    assert "'person', 'bicycle'" in errors[0] and 'metainfo=dict(classes=' in errors[0]
    errors, _ = check(dataset_cfg(root, data_prefix=dict(img_path='train/')))
    assert "train_dataloader.dataset.data_prefix has no 'img'" in errors[0], errors


def test_wrappers_subclasses_and_other_datasets(root):
    from mmdet.datasets import CocoDataset, VOCDataset

    def edit(coco):
        coco['annotations'][0]['category_id'] = 7
    ann_file = broken(root, edit)
    errors, _ = check(dict(type='RepeatDataset', times=2,
                           dataset=dataset_cfg(root, ann_file)))
    assert len(errors) == 1 and 'train_dataloader.dataset.dataset' in errors[0], errors

    class Subclass(CocoDataset):
        pass
    assert len(check(dataset_cfg(root, ann_file, type=Subclass))[0]) == 1
    assert check(dataset_cfg(root, ann_file, type=VOCDataset)) == ([], [])
    # A missing file is check_paths' to report.
    assert check(dataset_cfg(root, 'annotations/none.json')) == ([], [])


def test_report_raises_every_error_and_logs_notes(root, monkeypatch):
    import mmengine.logging
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log', lambda msg, **kw: logged.append(msg))

    def edit(coco):
        coco['annotations'][0]['category_id'] = 7
        coco['annotations'][1]['image_id'] = 70
        coco['annotations'][2]['bbox'][0] = -2
    cfg = Config(dict(train_dataloader=dict(dataset=dataset_cfg(root, broken(root, edit)))))
    with pytest.raises(UsageError) as info:
        report_coco_datasets(cfg, ['train_dataloader'])
    message = str(info.value)
    assert message.startswith('2 problems in the COCO annotation files: (1) ')
    assert 'annotation id 1 names category_id 7' in message
    assert '(2) ' in message and 'annotation id 2 names image_id 70' in message
    ours = [m for m in logged if 'broken.json' in m]
    assert len(ours) == 1 and 'partly outside the image (annotation id 3)' in ours[0], logged


def test_no_mmdet_import_without_an_mmdet_config():
    code = ('import sys; from mmengine.config import Config; '
            'from mmpyconv.runner.coco_check import check_coco_datasets; '
            'cfg = Config(dict(train_dataloader=dict(dataset=dict(type="ConcatDataset", '
            'datasets=[])))); '
            'assert check_coco_datasets(cfg, ["train_dataloader"]) == ([], []); '
            'assert "mmdet" not in sys.modules')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def snapshot(folder):
    state = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            with open(path, 'rb') as f:
                state[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns,
                                                        hashlib.sha1(f.read()).hexdigest())
    return state


def test_train_tool_refuses_before_writing(root, tmp_path, capsys):
    def edit(coco):
        coco['annotations'][3]['category_id'] = 12
    ann_file = broken(root, edit)
    import mmdet

    # mmdet's packaged config by its path: inherited as 'mmdet::...', every dict of it gets a
    # _scope_ key, which check_config_keys refuses in train_cfg (a check that is not this one).
    base = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', 'retinanet',
                        'retinanet_r18_fpn_1x_coco.py')
    config = tmp_path / 'retinanet_tiny_coco.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = {base!r}
        data_root = {root!r}
        metainfo = dict(classes={CLASSES!r})
        model = dict(bbox_head=dict(num_classes={len(CLASSES)}))
        train_dataloader = dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            dataset=dict(data_root=data_root, metainfo=metainfo, ann_file={ann_file!r},
                         data_prefix=dict(img='train/')))
        val_dataloader = dict(
            batch_size=1, num_workers=0, persistent_workers=False,
            dataset=dict(data_root=data_root, metainfo=metainfo,
                         ann_file='annotations/instances_val.json',
                         data_prefix=dict(img='val/')))
        test_dataloader = val_dataloader
        val_evaluator = dict(ann_file=data_root + '/annotations/instances_val.json')
        test_evaluator = val_evaluator
        '''))
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / config.name).write_text("# the earlier run's config\n")
    before = snapshot(work_dir)
    argv = [str(config), '--work-dir', str(work_dir)]
    assert run_tool(lambda: train_tool.main(argv)) == 2
    message = capsys.readouterr().err
    for fragment in ('error: ', 'broken.json (train_dataloader.dataset)',
                     'annotation id 4 names category_id 12'):
        assert fragment in message, message
    assert snapshot(work_dir) == before, 'the work directory changed'
