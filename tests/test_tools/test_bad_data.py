"""A file that cannot be read, met during a run, stops it with one line naming the file, the
dataset and what to do (issue 13, item 3): images (mmcv's LoadImageFromFile; mmpretrain and
mmdet's COCO), segmentation masks (mmseg's LoadAnnotations), videos (mmaction2's decord
transforms) and annotation lists, from the main process and from DataLoader workers.

The datasets are built and read in this process under mmpyconv.runner's data guard; one real
training run checks the exit status, the output and the log.
"""
import os
import shutil

import pytest
import torch
from mmengine.dataset import BaseDataset

from mmpyconv.runner import BadDataError, data_guard
from mmpyconv.runner.bad_data import bad_file, mark_datasets

from tool_harness import (
    VIDEO_PIPELINE,
    earlier_run,
    load_tool,
    snapshot,
    tool,
    truncate,
    video_dataset,
    write_config,
    write_video,
)

CONFIG = 'configs/some_config.py'
ADVICE = f'find every unreadable file with `python tools/analysis/check_dataset.py {CONFIG}`'


def garbage(path, size=300):
    with open(path, 'wb') as f:
        f.write(os.urandom(size))
    return str(path)


def build(scope, dataset_cfg, loader='train_dataloader'):
    from mmengine.registry import DATASETS, DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        dataset = DATASETS.build(dataset_cfg)
    mark_datasets(dataset, loader)
    return dataset


def index_of(dataset, key, path):
    (index, ) = [i for i in range(len(dataset)) if dataset.get_data_info(i)[key] == path]
    return index


@pytest.fixture
def forking():
    """OpenCV without its thread pool while DataLoader workers fork (as mmengine's Runner sets
    it): a pool the decoding here started would leave the workers waiting on its locks."""
    import cv2
    threads = cv2.getNumThreads()
    cv2.setNumThreads(0)
    yield
    cv2.setNumThreads(threads)


def failure(dataset, index):
    with data_guard(CONFIG), pytest.raises(BadDataError) as info:
        dataset[index]
    message = str(info.value)
    assert '\n' not in message and ADVICE in message, message
    return message


@pytest.fixture(scope='module')
def bad_shapes(tmp_path_factory, shapes_root):
    """The shapes dataset with one training image cut short."""
    root = str(tmp_path_factory.mktemp('bad') / 'shapes')
    shutil.copytree(shapes_root, root)
    bad = truncate(os.path.join(root, 'train', 'circle', 'circle_00001.png'))
    return root, bad


@pytest.fixture(scope='module')
def shapes_dataset(bad_shapes):
    root, bad = bad_shapes
    dataset = build('mmpretrain', dict(type='CustomDataset', data_root=root, data_prefix='train',
                                       pipeline=[dict(type='LoadImageFromFile')]))
    return dataset, index_of(dataset, 'img_path', bad), bad


def test_image(shapes_dataset):
    dataset, index, bad = shapes_dataset
    message = failure(dataset, index)
    assert message.startswith(f'cannot read the image {bad} of CustomDataset of '
                              'train_dataloader (AssertionError: failed to load image')
    assert message.endswith('then replace or remove it; --debug shows the traceback')


def test_image_from_dataloader_workers(shapes_dataset, forking):
    """torch re-raises a worker's exception from its formatted traceback: the one line is
    read back out of it."""
    dataset, _, bad = shapes_dataset
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2,
                                         collate_fn=lambda batch: batch)
    with data_guard(CONFIG), pytest.raises(BadDataError) as info:
        for _ in loader:
            pass
    message = str(info.value)
    assert message.startswith(f'cannot read the image {bad} of CustomDataset of '
                              'train_dataloader'), message
    assert '\n' not in message and 'Traceback' not in message


def test_without_the_guard_the_error_is_the_pipeline_s(shapes_dataset):
    """--debug (enabled=False), and after the block: mmcv's own exception, with its traceback."""
    dataset, index, _ = shapes_dataset
    with data_guard(CONFIG, enabled=False), pytest.raises(AssertionError):
        dataset[index]
    with pytest.raises(AssertionError):
        dataset[index]
    assert not hasattr(BaseDataset.__getitem__, '__wrapped__')


def test_the_suggested_check_carries_the_overrides(shapes_dataset):
    dataset, index, _ = shapes_dataset
    with data_guard(CONFIG, cfg_options={'data_root': '/d', 'max_epochs': 4}), \
            pytest.raises(BadDataError) as info:
        dataset[index]
    assert f'check_dataset.py {CONFIG} --cfg-options data_root=/d max_epochs=4`' in \
        str(info.value)


def test_other_errors_pass_unchanged():
    """A failure outside the loading transforms that names no file of the sample is not a bad
    file (a bug in an augmentation, a wrong key)."""
    try:
        raise KeyError('gt_label')
    except KeyError as error:
        assert bad_file(error, {'img_path': 'a.png'}) is None


def test_segmentation_mask(tmp_path):
    root = str(tmp_path / 'ade')
    load_tool('data/make_tiny_ade20k.py').write_dataset(root, 32, 32, 2, 2, seed=0)
    mask = garbage(os.path.join(root, 'annotations', 'training', 'tiny_train_00001.png'))
    dataset = build('mmseg', dict(
        type='ADE20KDataset', data_root=root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True)]))
    message = failure(dataset, index_of(dataset, 'seg_map_path', mask))
    assert message.startswith(f'cannot read the segmentation mask {mask} of ADE20KDataset of '
                              'train_dataloader ('), message


def test_coco_image(tmp_path):
    root = str(tmp_path / 'coco')
    tiny_coco = load_tool('data/make_tiny_coco.py')
    tiny_coco.write_dataset(root, 2, 2, 32, seed=0)
    image = garbage(os.path.join(root, 'val', 'val_00001.png'))
    dataset = build('mmdet', dict(
        type='CocoDataset', data_root=root, metainfo=dict(classes=tiny_coco.CLASSES),
        ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
        test_mode=True, pipeline=[dict(type='LoadImageFromFile'),
                                  dict(type='LoadAnnotations', with_bbox=True)]),
        loader='val_dataloader')
    message = failure(dataset, index_of(dataset, 'img_path', image))
    assert message.startswith(f'cannot read the image {image} of CocoDataset of '
                              'val_dataloader'), message
    assert f'(and its entry in {os.path.join(root, "annotations", "instances_val.json")})' \
        in message


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """Two good videos, one of garbage bytes, one cut after its first kilobyte."""
    folder = tmp_path_factory.mktemp('videos')
    for i, name in enumerate(('a.mp4', 'b.mp4', 'cut.mp4')):
        write_video(folder / name, seed=i)
    truncate(folder / 'cut.mp4', 1024)
    garbage(folder / 'garbage.mp4', 500)
    return folder


@pytest.mark.parametrize('name', ['garbage.mp4', 'cut.mp4'])
def test_video(videos, name):
    dataset = build('mmaction', video_dataset(videos, ['a.mp4', name, 'b.mp4']))
    path = str(videos / name)
    message = failure(dataset, 1)
    assert message.startswith(f'cannot read the video {path} of VideoDataset of '
                              'train_dataloader ('), message
    assert f'(and its entry in {videos / "videos.txt"})' in message


def test_video_from_dataloader_workers(videos, forking):
    dataset = build('mmaction', video_dataset(videos, ['a.mp4', 'b.mp4', 'garbage.mp4']))
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=1,
                                         collate_fn=lambda batch: batch)
    with data_guard(CONFIG), pytest.raises(BadDataError) as info:
        for _ in loader:
            pass
    assert str(info.value).startswith(f'cannot read the video {videos / "garbage.mp4"} of '
                                      'VideoDataset of train_dataloader')


def test_annotation_list(tmp_path):
    """A list line that VideoDataset cannot parse, met when the Runner builds the dataloader."""
    from types import SimpleNamespace

    from mmengine.registry import DefaultScope

    from mmpyconv.runner.launch import _tool_runner
    write_video(tmp_path / 'a.mp4')
    ann_file = tmp_path / 'list.txt'
    ann_file.write_text('a.mp4 0\na.mp4 cat\n')
    dataloader = dict(batch_size=1, num_workers=0,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type='VideoDataset', ann_file=str(ann_file),
                                   data_prefix=dict(video=str(tmp_path)),
                                   pipeline=VIDEO_PIPELINE))
    runner = SimpleNamespace(_train_dataloader=None, _val_dataloader=dataloader,
                             _test_dataloader=None)
    with DefaultScope.overwrite_default_scope('mmaction'), data_guard(CONFIG), \
            pytest.raises(BadDataError) as info:
        _tool_runner().build_dataloader(runner, dataloader)
    assert str(info.value).startswith(
        f'cannot read the annotation file {ann_file} of VideoDataset of val_dataloader '
        "(ValueError: invalid literal for int() with base 10: 'cat'): fix or regenerate it; "
        f'`python tools/analysis/check_dataset.py {CONFIG}` checks every split')


def test_a_real_run_stops_in_one_line(tmp_path, bad_shapes):
    """tools/train.py with DataLoader workers: exit status 1, the message as the last line, no
    traceback; the log names gloo and no GPU on a CPU-only machine."""
    root, bad = bad_shapes
    config = write_config(str(tmp_path / 'cfg.py'), root)
    work_dir = earlier_run(tmp_path / 'work')
    before = snapshot(work_dir)
    result = tool('train.py', config, '--work-dir', work_dir, '--cfg-options',
                  'train_dataloader.num_workers=2')
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: cannot read the image {bad} of CustomDataset of '
                           'train_dataloader'), output[-3000:]
    assert f'`python tools/analysis/check_dataset.py {config} --cfg-options ' \
        'train_dataloader.num_workers=2`' in last
    assert 'Traceback' not in output
    after = snapshot(work_dir)
    assert {k: v for k, v in after.items() if k in before} == before  # only new files
    if not torch.cuda.is_available():
        assert "dist_cfg: {'backend': 'gloo'}" in output and 'nccl' not in output
        assert 'processes: 1 (CPU only: no GPU)' in output and 'GPU number' not in output
