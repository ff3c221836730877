"""tools/data/make_tiny_kinetics.py: a video dataset in mmaction2's Kinetics-400 layout that
decord and mmaction2 read, whose classes are shape x direction of motion, with the direction
visible only in the order of frames, reproducible by seed."""
import os
from collections import Counter

import numpy as np
import pytest

from tool_harness import load_tool, ok, tool

decord = pytest.importorskip('decord')
kinetics = load_tool('data/make_tiny_kinetics.py')
PER_CLASS = dict(train=12, val=3)
FRAMES, SIZE = 16, 64


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """The written dataset, its class names (read from classes.txt) and every video decoded,
    as ``{split: [(class name, frames), ...]}``."""
    root = str(tmp_path_factory.mktemp('tiny_kinetics') / 'data')
    result = kinetics.write_dataset(root, num_train=PER_CLASS['train'],
                                    num_val=PER_CLASS['val'], frames=FRAMES, size=SIZE, seed=0)
    with open(os.path.join(root, 'classes.txt')) as f:
        classes = f.read().split('\n')[:-1]
    videos = {}
    for split in PER_CLASS:
        videos[split] = []
        with open(result[split]['ann_file']) as f:
            for line in f.read().split('\n')[:-1]:
                file_name, label = line.split(' ')
                reader = decord.VideoReader(os.path.join(result[split]['video_dir'], file_name))
                frames = reader.get_batch(list(range(len(reader)))).asnumpy()
                videos[split].append((classes[int(label)], frames))
    return root, result, classes, videos


def direction(name):
    """+1 for a class whose name says left to right, -1 for right to left."""
    ltr, rtl = name.endswith('left_to_right'), name.endswith('right_to_left')
    assert ltr != rtl, f'class {name!r} names no direction'
    return 1 if ltr else -1


def foreground(frames):
    """Per frame, the pixels far from the frame's median colour (the background): the shape."""
    background = np.median(frames.reshape(len(frames), -1, 3), axis=1)[:, None, None]
    distance = np.abs(frames.astype(np.float32) - background).sum(-1)
    return distance > distance.max(axis=(1, 2), keepdims=True) / 2


def centroids_x(frames):
    """The horizontal centroid of the foreground in each frame, in pixels."""
    mask = foreground(frames)
    assert mask.sum(axis=(1, 2)).min() > 0, 'a frame without a shape'
    return (mask * (np.arange(frames.shape[2]) + 0.5)).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))


def test_cli_writes_the_layout(tmp_path):
    output = ok(tool('data/make_tiny_kinetics.py', str(tmp_path / 'k'), '--num-train', '2',
                     '--num-val', '1', '--frames', '8', '--size', '32', '--fps', '5',
                     timeout=120))
    assert 'wrote 8 training and 4 validation videos of 4 classes' in output
    assert '8 frames of 32x32 px at 5 fps' in output and str(tmp_path / 'k') in output
    assert sorted(os.listdir(tmp_path / 'k')) == [
        'classes.txt', 'kinetics400_train_list_videos.txt', 'kinetics400_val_list_videos.txt',
        'videos_train', 'videos_val']
    reader = decord.VideoReader(str(tmp_path / 'k' / 'videos_val' / os.listdir(
        tmp_path / 'k' / 'videos_val')[0]))
    assert len(reader) == 8 and reader[0].shape == (32, 32, 3)
    assert reader.get_avg_fps() == pytest.approx(5)


def test_lists_and_files(dataset):
    root, result, classes, _ = dataset
    assert len(classes) == 4 == len(set(classes))
    assert result['classes'] == classes
    assert {name.split('_')[0] for name in classes} == {'small', 'large'}
    assert sorted(direction(name) for name in classes) == [-1, -1, 1, 1]
    for split, per_class in PER_CLASS.items():
        assert result[split]['ann_file'] == os.path.join(
            root, f'kinetics400_{split}_list_videos.txt')
        assert result[split]['video_dir'] == os.path.join(root, f'videos_{split}')
        with open(result[split]['ann_file']) as f:
            lines = f.read().split('\n')
        assert lines[-1] == '' and result[split]['videos'] == len(lines) - 1
        pairs = [line.split(' ') for line in lines[:-1]]
        assert Counter(int(label) for _, label in pairs) == {i: per_class for i in range(4)}
        names = [file_name for file_name, _ in pairs]
        assert all(name.endswith('.mp4') and '/' not in name for name in names)
        assert sorted(names) == sorted(os.listdir(result[split]['video_dir']))


def test_decord_reads_every_video(dataset):
    for split, videos in dataset[3].items():
        assert len(videos) == 4 * PER_CLASS[split]
        for _, frames in videos:
            assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8


def test_every_frame_is_a_key_frame(dataset):
    """No predicted frames, whose codec artifacts could differ with the direction of motion."""
    video_dir = dataset[1]['val']['video_dir']
    for file_name in os.listdir(video_dir):
        reader = decord.VideoReader(os.path.join(video_dir, file_name))
        assert list(reader.get_key_indices()) == list(range(FRAMES)), file_name


def test_mmaction_reads_it(dataset):
    """The lists and folders as mmaction2's Kinetics-400 configs use them: VideoDataset, then
    the decord loading transforms of an I3D-style clip."""
    pytest.importorskip('mmaction')
    from mmaction.datasets import VideoDataset
    from mmaction.datasets.transforms import DecordDecode, DecordInit, SampleFrames
    _, result, _, videos = dataset
    data = VideoDataset(result['val']['ann_file'],
                        data_prefix=dict(video=result['val']['video_dir']), pipeline=[])
    assert len(data) == len(videos['val'])
    for i in (0, len(data) - 1):
        info = data.get_data_info(i)
        for transform in (DecordInit(), SampleFrames(clip_len=8, frame_interval=2, num_clips=1,
                                                     test_mode=True), DecordDecode()):
            info = transform(info)
        assert info['total_frames'] == FRAMES
        assert len(info['imgs']) == 8 and info['imgs'][0].shape == (SIZE, SIZE, 3)
    assert sorted({data.get_data_info(i)['label'] for i in range(len(data))}) == [0, 1, 2, 3]


def test_motion_matches_the_class_name(dataset):
    """The shape crosses most of the frame at constant speed, in the named direction."""
    for videos in dataset[3].values():
        for name, frames in videos:
            xs = centroids_x(frames)
            t = np.arange(len(xs))
            assert np.corrcoef(t, xs)[0, 1] * direction(name) > 0.99, (name, xs)
            assert (np.diff(xs) * direction(name)).min() > 0, (name, xs)
            assert abs(xs[-1] - xs[0]) > 0.4 * SIZE, (name, xs)


def test_size_shows_in_a_single_frame(dataset):
    """In any one frame, every large disc covers more pixels than every small one."""
    areas = {'small': [], 'large': []}
    for videos in dataset[3].values():
        for name, frames in videos:
            mask = foreground(frames[FRAMES // 2:FRAMES // 2 + 1])[0]
            areas[name.split('_')[0]].append(mask.sum())
    assert min(areas['large']) > 2 * max(areas['small']), areas


def test_order_free_statistics_do_not_tell_the_direction(dataset):
    """Pooled over a class, the shape's positions are spread alike for both directions; the
    same histogram over the first half of each clip tells them apart (so it would show a bias)."""
    classes, videos = dataset[2], dataset[3]['train']
    bins = np.linspace(0, SIZE, 9)

    def histogram(name, part):
        xs = np.concatenate([part(centroids_x(frames)) for n, frames in videos if n == name])
        return np.histogram(xs, bins)[0] / len(xs)

    for shape in ('small', 'large'):
        ltr, rtl = (n for n in classes if n.startswith(shape) and direction(n) > 0), (
            n for n in classes if n.startswith(shape) and direction(n) < 0)
        ltr, rtl = next(ltr), next(rtl)
        everything = np.abs(histogram(ltr, lambda x: x) - histogram(rtl, lambda x: x)).sum()
        first_half = np.abs(histogram(ltr, lambda x: x[:len(x) // 2])
                            - histogram(rtl, lambda x: x[:len(x) // 2])).sum()
        assert everything < 0.35 and first_half > 1.2, (shape, everything, first_half)


def test_reproducible_by_seed(tmp_path):
    def make(name, seed):
        result = kinetics.write_dataset(str(tmp_path / name), num_train=1, num_val=1, frames=8,
                                        size=32, seed=seed)
        lists = []
        frames = []
        for split in ('train', 'val'):
            with open(result[split]['ann_file'], 'rb') as f:
                lists.append(f.read())
            for file_name in sorted(os.listdir(result[split]['video_dir'])):
                reader = decord.VideoReader(os.path.join(result[split]['video_dir'], file_name))
                frames.append(reader.get_batch(list(range(len(reader)))).asnumpy())
        return lists, np.stack(frames)

    (lists_a, frames_a), (lists_b, frames_b), (_, frames_c) = (
        make('a', 0), make('b', 0), make('c', 1))
    assert lists_a == lists_b
    np.testing.assert_array_equal(frames_a, frames_b)
    assert not np.array_equal(frames_a, frames_c)


@pytest.mark.parametrize('args,message', [
    (['--frames', '7'], '--frames must be at least 8'),
    (['--size', '14'], '--size must be at least 16'),
    (['--size', '33'], '--size must be even'),
    (['--size', '48'], 'decord'),
    (['--num-train', '0'], '--num-train and --num-val must be at least 1'),
    (['--num-val', '0'], '--num-train and --num-val must be at least 1'),
    (['--fps', '0'], '--fps must be positive'),
])
def test_bad_arguments(tmp_path, capsys, args, message):
    assert kinetics.main([str(tmp_path / 'out'), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1, err
    assert not (tmp_path / 'out').exists()


def test_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    out = tmp_path / 'out'
    (out / 'videos_train').mkdir(parents=True)
    (out / 'notes.txt').write_text('mine')
    (out / 'videos_train' / 'stale.mp4').write_bytes(b'old')
    before = sorted(str(p.relative_to(out)) for p in out.rglob('*'))
    assert kinetics.main([str(out), '--num-train', '1', '--num-val', '1']) == 2
    err = capsys.readouterr().err
    assert 'not empty' in err and '--force' in err and err.count('\n') == 1, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob('*')) == before
    assert (out / 'videos_train' / 'stale.mp4').read_bytes() == b'old'
    # An empty folder is fine; --force writes into a non-empty one, replacing its old videos.
    (tmp_path / 'empty').mkdir()
    assert kinetics.main([str(tmp_path / 'empty'), '--num-train', '1', '--num-val', '1',
                          '--frames', '8', '--size', '32']) == 0
    assert kinetics.main([str(out), '--num-train', '1', '--num-val', '1', '--frames', '8',
                          '--size', '32', '--force']) == 0
    assert not (out / 'videos_train' / 'stale.mp4').exists()
    assert (out / 'notes.txt').read_text() == 'mine'
    assert len(os.listdir(out / 'videos_train')) == 4
