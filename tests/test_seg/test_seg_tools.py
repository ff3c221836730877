"""The seg configs through the real tools: train, test (single scale, --tta), demo, 2 processes.

Everything runs as subprocesses with timeouts on a tiny ADE20K-format dataset written by
tools/data/make_tiny_ade20k.py (64x64 scenes). The model is the shipped
configs/pyconvseg/tiny/pyconvsegnet_pyconvresnet18_tiny-ade20k-64x64.py: configs/pyconvseg/
ade20k.py made small (PyConvResNet-18 at half width, narrow heads, no ImageNet weights), with
pipelines for 64x64 images, as a user would adapt it for a dataset of small images; the tests
give it their data folder. SMALL_MODEL makes ade20k.py itself small through --cfg-options.
"""
import importlib.util
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap
from typing import List, Optional, Sequence

import numpy as np
import pytest
from PIL import Image

import tool_harness as harness
from tool_harness import free_port, ok

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
CONFIG = osp.join(REPO, 'configs', 'pyconvseg', 'ade20k.py')
# configs/pyconvseg/ade20k.py made tiny: SMALL_MODEL, 64x64 pipelines, ITERS iterations.
TINY_CONFIG = osp.join(REPO, 'configs', 'pyconvseg', 'tiny',
                       'pyconvsegnet_pyconvresnet18_tiny-ade20k-64x64.py')
# The classification side's launch-test hook: every rank dumps its weights after training.
LAUNCH_HELPERS = osp.join(REPO, 'tests', 'test_tools', 'helpers')
ITERS = 120
SMALL_MODEL = [
    'model.backbone.init_cfg=None', 'model.backbone.depth=18',
    'model.backbone.stem_channels=32', 'model.backbone.base_channels=32',
    'model.backbone.pyconv_groups=((1,2,4,8),(1,2,4),(1,2),(1,))',
    'model.decode_head.in_channels=256', 'model.decode_head.local_channels=64',
    'model.decode_head.global_channels=64', 'model.decode_head.channels=32',
    'model.auxiliary_head.in_channels=128', 'model.auxiliary_head.channels=32'
]


def run(args: Sequence[str], timeout: float = 300, env: Optional[dict] = None,
        cwd: str = REPO) -> subprocess.CompletedProcess:
    """tool_harness.run with one thread per process (the seg runs are timed for that)."""
    return harness.run(args, timeout=timeout, env=dict({'OMP_NUM_THREADS': '1'}, **(env or {})),
                       cwd=cwd)


def tool(name: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run([sys.executable, osp.join(TOOLS, name), *args], **kwargs)


def metrics(output: str, key: str = 'mIoU') -> List[float]:
    return [float(v) for v in re.findall(rf'\b{key}: (\d+\.\d+)', output)]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('seg') / 'tiny_ade20k')
    ok(tool('data/make_tiny_ade20k.py', root, '--num-train', '160', '--num-val', '24',
            timeout=120))
    return root


def write_tiny_config(path: str, data_root: str) -> str:
    """The shipped tiny config (docs/segmentation.md's numbers come from it) on ``data_root``."""
    text = textwrap.dedent(f'''\
        _base_ = {TINY_CONFIG!r}
        data_root = {data_root!r}
        train_dataloader = dict(dataset=dict(data_root=data_root))
        val_dataloader = dict(dataset=dict(data_root=data_root))
        test_dataloader = val_dataloader
        ''')
    with open(path, 'w') as f:
        f.write(text)
    return path


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory, data_root) -> str:
    return write_tiny_config(str(tmp_path_factory.mktemp('seg_cfg') / 'tiny_seg.py'), data_root)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_config):
    """One short training run: the checkpoint and the log that several tests read."""
    work_dir = str(tmp_path_factory.mktemp('seg_train'))
    output = ok(tool('train.py', tiny_config, '--work-dir', work_dir, timeout=420))
    checkpoint = osp.join(work_dir, f'iter_{ITERS}.pth')
    assert osp.isfile(checkpoint)
    return dict(work_dir=work_dir, output=output, checkpoint=checkpoint)


def chance_miou(data_root: str) -> float:
    """mIoU (%) of predicting the most frequent class everywhere, on the validation masks."""
    counts = {}
    folder = osp.join(data_root, 'annotations', 'validation')
    for name in os.listdir(folder):
        ids, n = np.unique(np.asarray(Image.open(osp.join(folder, name))), return_counts=True)
        for i, c in zip(ids, n):
            if i:  # 0 is ignored
                counts[i] = counts.get(i, 0) + c
    return 100.0 * max(counts.values()) / sum(counts.values()) / len(counts)


def test_training_learns_the_tiny_dataset(trained, data_root):
    losses = [float(v) for v in re.findall(r'Iter\(train\).*?\bloss: (\d+\.\d+)',
                                           trained['output'])]
    assert len(losses) == ITERS // 20 and losses[-1] < 0.5 * losses[0]
    (miou, ) = metrics(trained['output'])
    chance = chance_miou(data_root)
    assert chance < 15
    assert miou > max(35.0, 3 * chance), (miou, chance)


def test_test_tool_single_scale_and_tta(trained, tiny_config, tmp_path):
    common = ['--cfg-options', *SMALL_MODEL]
    single = ok(tool('test.py', tiny_config, trained['checkpoint'], '--work-dir',
                     str(tmp_path / 'ss'), *common, timeout=240))
    (ss, ) = metrics(single)
    (at_training, ) = metrics(trained['output'])
    assert ss == pytest.approx(at_training, abs=0.011)  # the same weights, data and pipeline
    tta = ok(tool('test.py', tiny_config, trained['checkpoint'], '--tta', '--work-dir',
                  str(tmp_path / 'tta'), *common, timeout=240))
    (ms, ) = metrics(tta)
    assert ms > 35.0
    # 3 scales x 2 flips averaged: not the single-scale result.
    assert metrics(tta, 'aAcc') + metrics(tta, 'mAcc') != metrics(single, 'aAcc') + metrics(
        single, 'mAcc')


def test_test_tool_draws_predictions(trained, tiny_config, data_root, tmp_path):
    show_dir = tmp_path / 'vis'
    ok(tool('test.py', tiny_config, trained['checkpoint'], '--work-dir', str(tmp_path / 'work'),
            '--show-dir', str(show_dir), '--cfg-options', *SMALL_MODEL, timeout=240))
    # mmseg's visualizer writes every test image (interval 1) under vis_data/vis_image.
    drawn = sorted(os.listdir(show_dir / 'vis_data' / 'vis_image'))
    images = sorted(os.listdir(osp.join(data_root, 'images', 'validation')))
    assert len(drawn) == len(images)
    assert all(any(name.startswith(f'test_{image}') for image in images) for name in drawn)
    with Image.open(show_dir / 'vis_data' / 'vis_image' / drawn[0]) as picture:
        assert picture.size == (128, 64)  # ground truth and prediction side by side


def test_demo_writes_a_class_overlay(trained, tiny_config, data_root, tmp_path):
    image = osp.join(data_root, 'images', 'validation', 'tiny_val_00000.jpg')
    out = str(tmp_path / 'overlay.png')
    output = ok(tool('demo/seg_demo.py', image, tiny_config, trained['checkpoint'], '--out',
                     out, '--cfg-options', *SMALL_MODEL, timeout=180))
    assert f'wrote {out}' in output and 'sky' in output
    from mmseg.datasets import ADE20KDataset
    palette = np.asarray(ADE20KDataset.METAINFO['palette'], np.float64)
    src = np.asarray(Image.open(image).convert('RGB'), np.float64)
    overlay = np.asarray(Image.open(out).convert('RGB'), np.float64)
    assert overlay.shape == src.shape
    # overlay = (image + colour of the predicted class) / 2: recover the colours ...
    colour = 2 * overlay - src
    dist = np.abs(colour[:, :, None, :] - palette[None, None]).max(-1)
    nearest, gap = dist.argmin(-1), dist.min(-1)
    assert np.mean(gap < 8) > 0.95  # ... nearly all pixels carry a class colour
    gt = np.asarray(Image.open(image.replace('images', 'annotations').replace('.jpg', '.png')))
    sky = gt == 3  # ADE20K id 3 -> class 2
    assert sky.any() and np.mean(nearest[sky] == 2) > 0.8


def test_real_config_trains_with_only_the_data_root_changed(data_root, tmp_path):
    """configs/pyconvseg/ade20k.py as it is (473 crops, rotation, sliding windows on a 512 long
    side), made small and short, on an ADE20K-format folder."""
    roots = [f'{loader}.dataset.data_root={data_root}' for loader in
             ('train_dataloader', 'val_dataloader')]
    output = ok(tool(
        'train.py', CONFIG, '--work-dir', str(tmp_path / 'work'), '--cfg-options', *roots,
        *SMALL_MODEL, 'train_dataloader.batch_size=1', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'val_dataloader.dataset.indices=1',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=1', 'param_scheduler.0.end=1',
        timeout=300))
    assert re.search(r'Iter\(train\) \[1/1\]', output) or 'Saving checkpoint at 1 iter' in output
    assert len(metrics(output)) == 1
    assert osp.isfile(str(tmp_path / 'work' / 'iter_1.pth'))


def test_two_gloo_processes_train_the_seg_config(tiny_config, tmp_path):
    """tools/dist_train.sh with two CPU processes; both ranks end with the same weights.

    The config keeps its SyncBN: without an accelerator the tools make it BN (gloo DDP refuses
    SyncBN on CPU modules).
    """
    import torch
    config = tmp_path / 'dist_seg.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = {tiny_config!r}
        custom_imports = dict(imports=['mmpyconv', 'mmpyconv.models.decode_heads',
                                       'mmpyconv.datasets.seg_transforms', 'rank_weights_hook'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='DumpRankWeightsHook')]
        '''))
    work_dir = tmp_path / 'work'
    pythonpath = os.pathsep.join(p for p in (LAUNCH_HELPERS, os.environ.get('PYTHONPATH')) if p)
    output = ok(run(
        ['bash', osp.join(TOOLS, 'dist_train.sh'), str(config), '2', '--work-dir',
         str(work_dir), '--cfg-options', *SMALL_MODEL, 'train_cfg.max_iters=2',
         'param_scheduler.0.end=2', 'default_hooks.checkpoint.interval=2', 'val_cfg=None',
         'val_dataloader=None', 'val_evaluator=None', 'default_hooks.logger.interval=1'],
        env=dict(PYTHON=sys.executable, PORT=str(free_port()), PYTHONPATH=pythonpath),
        timeout=300))
    dumps = [torch.load(work_dir / f'rank{r}_weights.pth', weights_only=True) for r in (0, 1)]
    for rank, dump in enumerate(dumps):
        assert (dump['rank'], dump['world_size'], dump['iter']) == (rank, 2, 2)
        assert dump['wrapper'] == 'MMDistributedDataParallel'
    params = [d['params'] for d in dumps]
    assert params[0].keys() == params[1].keys()
    assert any(k.startswith('decode_head.global_context') for k in params[0])
    for name, value in params[0].items():
        torch.testing.assert_close(params[1][name], value, rtol=0, atol=0)
    moved = [n for n, v in params[0].items() if not torch.equal(v, dumps[0]['initial'][n])]
    assert len(moved) == len(params[0])
    assert 'Iter(train) [2/2]' in output


def test_missing_mask_stops_testing_with_a_clear_error(trained, data_root, tiny_config,
                                                       tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    os.remove(osp.join(root, 'annotations', 'validation', 'tiny_val_00003.png'))
    result = tool('test.py', tiny_config, trained['checkpoint'], '--work-dir',
                  str(tmp_path / 'work'), '--cfg-options', *SMALL_MODEL,
                  f'test_dataloader.dataset.data_root={root}', timeout=240)
    assert result.returncode != 0
    assert 'tiny_val_00003.jpg has no segmentation mask: expected' in result.stderr


def test_checkpoint_of_another_class_count_is_refused(trained, tiny_config, data_root,
                                                      tmp_path):
    other = [*SMALL_MODEL, 'model.decode_head.num_classes=19',
             'model.auxiliary_head.num_classes=19']
    result = tool('test.py', tiny_config, trained['checkpoint'], '--work-dir',
                  str(tmp_path / 'work'), '--cfg-options', *other, timeout=240)
    assert result.returncode == 2
    assert 'decode_head.conv_seg.weight: checkpoint (150, 32, 1, 1), model (19, 32, 1, 1)' \
        in result.stderr
    assert not (tmp_path / 'work').exists()

    spec = importlib.util.spec_from_file_location('seg_demo', osp.join(TOOLS, 'demo',
                                                                        'seg_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    image = osp.join(data_root, 'images', 'validation', 'tiny_val_00000.jpg')
    out = tmp_path / 'overlay.png'
    with pytest.raises(demo.UsageError, match=r'does not fit the model.*conv_seg'):
        demo.main([image, tiny_config, trained['checkpoint'], '--out', str(out),
                   '--cfg-options', *other])
    assert not out.exists()
