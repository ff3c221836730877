"""tools/analysis/check_dataset.py (issue 13, item 3): every sample of a config's splits read
through its loading transforms, in worker processes with a progress bar; the files that cannot
be read are listed with their error, then one summary line; exit status 1 when some cannot be
read, 0 when all can, 2 for a usage error. Classification (the shipped shapes config),
segmentation (the shipped ADE20K config), detection (a COCO config inheriting a shipped one) and
video (an mmaction2 VideoDataset config written here), on small data the tests write.
"""
import os
import shutil

import pytest

from mmpyconv.runner import UsageError
from mmpyconv.runner.data_check import loading_pipeline

from tool_harness import (
    ROOT,
    VIDEO_PIPELINE,
    load_tool,
    tool,
    truncate,
    video_config,
    video_dataset,
    write_video,
)

check_tool = load_tool('analysis/check_dataset.py')
SHAPES = os.path.join(ROOT, 'configs', 'pyconvresnet', 'pyconvresnet18_1xb32_shapes.py')
ADE20K = os.path.join(ROOT, 'configs', 'pyconvseg', 'ade20k.py')
MASK_RCNN = os.path.join(ROOT, 'configs', 'pyconvdet', 'mask-rcnn_pyconvresnet50_fpn_1x_coco.py')


def garbage(path, size=300):
    with open(path, 'wb') as f:
        f.write(os.urandom(size))
    return str(path)


def check(capsys, *argv):
    """check_dataset's main in this process: (exit status, printed lines)."""
    status = check_tool.main([str(a) for a in argv])
    return status, capsys.readouterr().out.splitlines()


def test_loading_transforms_only():
    assert [t['type'] for t in loading_pipeline(VIDEO_PIPELINE)] == [
        'DecordInit', 'SampleFrames', 'DecordDecode']
    seg = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
           dict(type='CheckSegMap'), dict(type='RandomResize'), dict(type='PackSegInputs')]
    assert [t['type'] for t in loading_pipeline(seg)] == [
        'LoadImageFromFile', 'LoadAnnotations', 'CheckSegMap']
    assert loading_pipeline([dict(type='RandomFlip')]) == []


def test_shapes_config(tmp_path, shapes_root):
    """The real command: a progress bar, the bad file, the summary, exit status 1."""
    root = str(tmp_path / 'shapes')
    shutil.copytree(shapes_root, root)
    bad = truncate(os.path.join(root, 'train', 'star', 'star_00002.png'))
    result = tool('analysis/check_dataset.py', SHAPES, '--workers', '2', '--cfg-options',
                  f'data_root={root}')
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert 'train: 24 samples (CustomDataset), read by 2 processes' in lines
    assert '24/24' in result.stdout and '18/18' in result.stdout  # the progress bars
    assert lines[-3:] == [
        '1 file cannot be read:',
        f'  train: image {bad}: AssertionError: failed to load image: {bad}',
        'checked 42 samples, 1 bad (train: 24 checked, 1 bad; val: 18 checked, 0 bad; test: '
        'the same dataset as val)']


def test_every_sample_readable(capsys, shapes_root):
    status, lines = check(capsys, SHAPES, '--splits', 'val', '--workers', '1',
                          '--cfg-options', f'data_root={shapes_root}')
    assert status == 0
    assert lines[-1] == 'checked 18 samples, 0 bad (val: 18 checked, 0 bad)'


def test_ade20k_config(capsys, tmp_path):
    root = str(tmp_path / 'ade')
    load_tool('data/make_tiny_ade20k.py').write_dataset(root, 32, 32, 3, 2, seed=0)
    mask = garbage(os.path.join(root, 'annotations', 'training', 'tiny_train_00002.png'))
    image = truncate(os.path.join(root, 'images', 'validation', 'tiny_val_00000.jpg'))
    status, lines = check(capsys, ADE20K, '--workers', '1', '--cfg-options',
                          f'data_root={root}')
    assert status == 1
    assert lines[-4] == '2 files cannot be read:'
    assert lines[-3].startswith(f'  train: segmentation mask {mask}: ')
    assert lines[-2].startswith(f'  val: image {image}: ')
    assert lines[-1] == ('checked 5 samples, 2 bad (train: 3 checked, 1 bad; val: 2 checked, '
                         '1 bad; test: the same dataset as val)')


def test_coco_config(capsys, tmp_path):
    root = str(tmp_path / 'coco')
    tiny_coco = load_tool('data/make_tiny_coco.py')
    tiny_coco.write_dataset(root, 3, 2, 32, seed=0)
    image = garbage(os.path.join(root, 'train', 'train_00001.png'))
    config = tmp_path / 'tiny_coco.py'
    config.write_text(
        f'_base_ = {MASK_RCNN!r}\n'
        f'data_root = {root!r}\n'
        f'metainfo = dict(classes={tiny_coco.CLASSES!r})\n'
        "train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, "
        "ann_file='annotations/instances_train.json', data_prefix=dict(img='train/')))\n"
        "val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, "
        "ann_file='annotations/instances_val.json', data_prefix=dict(img='val/')))\n"
        'test_dataloader = val_dataloader\n')
    status, lines = check(capsys, config, '--splits', 'train', 'val', '--workers', '1')
    assert status == 1
    assert lines[-2] == (f'  train: image {image}: AssertionError: failed to load image: '
                         f'{image}')
    assert lines[-1] == 'checked 5 samples, 1 bad (train: 3 checked, 1 bad; val: 2 checked, 0 bad)'


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('videos')
    for i, name in enumerate(('a.mp4', 'b.mp4', 'c.mp4')):
        write_video(folder / name, seed=i)
    garbage(folder / 'garbage.mp4', 500)
    return folder


def test_video_config(capsys, tmp_path, videos):
    config = video_config(tmp_path / 'videos.py',
                          video_dataset(videos, ['a.mp4', 'garbage.mp4', 'b.mp4', 'c.mp4']))
    status, lines = check(capsys, config, '--workers', '2')
    assert status == 1
    assert 'train: 4 samples (VideoDataset), read by 2 processes' in lines
    assert lines[-3].startswith(f'  train: video {videos / "garbage.mp4"}: ')
    assert lines[-2].startswith(f'  val: video {videos / "garbage.mp4"}: ')
    assert lines[-1] == 'checked 8 samples, 2 bad (train: 4 checked, 1 bad; val: 4 checked, 1 bad)'


def test_annotation_list_that_cannot_be_read(capsys, tmp_path, videos):
    dataset = video_dataset(videos, ['a.mp4'])
    ann_file = tmp_path / 'broken.txt'
    ann_file.write_text('a.mp4 0\nb.mp4 dog\n')
    dataset['ann_file'] = str(ann_file)
    config = video_config(tmp_path / 'videos.py', dataset)
    status, lines = check(capsys, config, '--splits', 'train', '--workers', '1')
    assert status == 1
    assert lines[-2] == (f"  train: annotation file {ann_file}: ValueError: invalid literal for "
                         "int() with base 10: 'dog'")
    assert lines[-1] == 'checked 0 samples, 1 bad (train: 0 checked, 1 bad)'


@pytest.mark.parametrize('argv, message', [
    (['--splits', 'test'], 'has no test_dataloader with a dataset; it has train, val'),
    (['--workers', '0'], '--workers 0: give 1 or more'),
    (['--cfg-options', 'train_dataloader.dataset.ann_file=/nowhere/list.txt'],
     "train_dataloader.dataset.ann_file = '/nowhere/list.txt': /nowhere/list.txt does not "
     'exist'),
])
def test_usage_errors(tmp_path, videos, argv, message):
    config = video_config(tmp_path / 'videos.py', video_dataset(videos, ['a.mp4']))
    with pytest.raises(UsageError) as info:
        check_tool.main([config, *argv])
    assert message in str(info.value)
    assert info.value.exit_status == 2
