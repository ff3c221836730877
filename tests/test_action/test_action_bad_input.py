"""Bad video data: a missing or empty video and a label the head does not have stop
tools/train.py before anything is written, naming the lines; a video shorter than the clip is
looped, as mmaction2 documents."""
import os
import shutil

import numpy as np
import pytest

from tool_harness import ROOT, earlier_run, load_tool, refused

train_tool = load_tool('train.py')
I3D = os.path.join(ROOT, 'configs', 'pyconvaction', 'tiny', 'i3d_pyconvresnet3d18_tiny-kinetics.py')
LIST = 'kinetics400_train_list_videos.txt'


@pytest.fixture
def dataset(video_workspace, tmp_path, monkeypatch):
    """A copy of the small set in a folder of its own (the cases below damage it), as cwd."""
    shutil.copytree(os.path.join(video_workspace, 'data'), str(tmp_path / 'data'))
    monkeypatch.chdir(tmp_path)
    return str(tmp_path / 'data' / 'tiny_kinetics')


def lines(root: str):
    with open(os.path.join(root, LIST)) as f:
        return f.read().splitlines()


def write_lines(root: str, rows):
    with open(os.path.join(root, LIST), 'w') as f:
        f.write('\n'.join(rows) + '\n')


@pytest.fixture
def work_dir(tmp_path):
    return earlier_run(tmp_path / 'work', os.path.basename(I3D))


def test_label_outside_the_class_count(dataset, work_dir):
    rows = lines(dataset)
    name = rows[2].split()[0]
    rows[2] = f'{name} 7'
    write_lines(dataset, rows)
    refused(train_tool.main, [I3D, '--work-dir', work_dir], work_dir,
            'train_dataloader.dataset', f'line 3 ({name}): 7', 'outside 0..3',
            'num_classes=4', LIST)


@pytest.mark.parametrize('damage,kind', [('remove', 'does not exist'),
                                         ('empty', 'empty (0-byte) video')])
def test_missing_or_empty_video(dataset, work_dir, damage, kind):
    name = lines(dataset)[5].split()[0]
    path = os.path.join(dataset, 'videos_train', name)
    if damage == 'remove':
        os.remove(path)
    else:
        open(path, 'w').close()
    refused(train_tool.main, [I3D, '--work-dir', work_dir], work_dir,
            f'line 6 ({name})', kind, 'videos_train')


def test_several_problems_in_one_message(dataset, work_dir):
    rows = lines(dataset)
    rows[0] = rows[0].split()[0] + ' -1'
    rows.append('no_such_video.mp4 1')
    write_lines(dataset, rows)
    message = refused(train_tool.main, [I3D, '--work-dir', work_dir], work_dir,
                      '2 problems in the video lists', 'line 1', f'line {len(rows)}')
    assert 'no_such_video.mp4' in message


def test_a_video_shorter_than_the_clip_is_looped(dataset):
    """The I3D clip takes 8 frames every 2nd (16 frames); a 5-frame video still gives 8 frames,
    mmaction2's SampleFrames looping over it (out_of_bound_opt='loop', its default)."""
    import cv2
    from mmengine.config import Config
    from mmengine.registry import DATASETS, init_default_scope
    name = lines(dataset)[0].split()[0]
    writer = cv2.VideoWriter(os.path.join(dataset, 'videos_train', name),
                             cv2.VideoWriter_fourcc(*'mp4v'), 10, (64, 64))
    for i in range(5):
        writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    writer.release()
    cfg = Config.fromfile(I3D)
    init_default_scope('mmaction')
    sample = DATASETS.build(cfg.train_dataloader.dataset)[0]
    assert sample['inputs'].shape == (1, 3, 8, 32, 32)
    assert sample['data_samples'].gt_label.item() == 0
