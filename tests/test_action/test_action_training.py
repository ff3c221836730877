"""The recognizers of configs/pyconvaction/tiny train on the synthetic Kinetics-layout set of
tools/data/make_tiny_kinetics.py through tools/train.py, reading the mp4s with decord as the
Kinetics pipelines do, and tools/test.py scores them on held-out videos.

The set's 4 classes are a small or a large disc moving left or right; a frame shows the size,
only the order of frames shows the direction. So TSN, which averages its frames' scores, can tell
the size and not the direction: its top-2 accuracy can reach 100% (chance: 50%), its top-1 50%
and no more (chance: 25%). The 3D network must beat 50% top-1 to have learnt the motion.
"""
import json
import os

import pytest

from tool_harness import ROOT, load_tool

train_tool = load_tool('train.py')
test_tool = load_tool('test.py')
TINY = os.path.join(ROOT, 'configs', 'pyconvaction', 'tiny')


def last_val_metrics(work_dir: str) -> dict:
    """The metrics of the last validation, from the run's scalars.json."""
    found = None
    for folder, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(os.path.join(folder, 'scalars.json')) as f:
                for line in f:
                    record = json.loads(line)
                    if 'acc/top1' in record:
                        found = record
    assert found is not None, f'no validation was logged under {work_dir}'
    return found


@pytest.mark.parametrize('config,top1,top2', [
    # TSN learns the size: top-2 far above chance (0.5); its top-1 is a coin toss between the
    # two directions of the right size, between chance (0.25) and 0.5.
    ('tsn_pyconvresnet18_tiny-kinetics.py', 0.25, 0.9),
    # The 3D network sees the motion: top-1 above what an order-free model can reach (0.5).
    ('i3d_pyconvresnet3d18_tiny-kinetics.py', 0.75, 0.9),
])
def test_trains_on_small_videos_and_tests_on_held_out_ones(video_workspace, tmp_path,
                                                          monkeypatch, capsys, config, top1,
                                                          top2):
    monkeypatch.chdir(video_workspace)
    path = os.path.join(TINY, config)
    work_dir = str(tmp_path / 'work')
    assert train_tool.main([path, '--work-dir', work_dir]) is None
    val = last_val_metrics(work_dir)
    assert val['acc/top1'] >= top1 and val['acc/top2'] >= top2, val

    capsys.readouterr()
    from mmengine.config import Config
    checkpoint = os.path.join(work_dir, f'epoch_{Config.fromfile(path).train_cfg.max_epochs}.pth')
    assert test_tool.main([path, checkpoint, '--work-dir', str(tmp_path / 'test')]) is None
    captured = capsys.readouterr()
    out = captured.out + captured.err
    for metric in ('acc/top1', 'acc/top2', 'acc/mean1'):  # top-k and mean class accuracy
        assert metric in out, out[-2000:]
    # The test tool scores the saved checkpoint as the last validation did.
    assert f"acc/top1: {val['acc/top1']:.4f}" in out, out[-2000:]
