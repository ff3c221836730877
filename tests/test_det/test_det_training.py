"""The detectors of configs/pyconvdet train on the tiny COCO-format dataset that
tools/data/make_tiny_coco.py writes, through tools/train.py and tools/test.py, and mmdet's
CocoMetric scores them clearly above the same model untrained.

Each test config inherits a shipped config and changes only what a small CPU run needs,
through the config's own keys: PyConvResNet-18 without pretrained weights, narrow necks and
heads, 96 px images, the dataset and its three classes, AdamW (SGD needs far more iterations
from scratch) and a few hundred iterations.
"""
import glob
import json
import os
import textwrap

import pytest
import torch
from mmengine.config import Config

from tool_harness import ROOT, load_tool

tiny_coco = load_tool('data/make_tiny_coco.py')
train_tool = load_tool('train.py')
test_tool = load_tool('test.py')
CONFIGS = os.path.join(ROOT, 'configs', 'pyconvdet')
NUM_TRAIN, NUM_VAL, SIZE = 64, 24, 64

# What every small run changes: data, classes, image size, schedule, optimizer.
SMALL_RUN = '''
data_root = {data_root!r}
classes = {classes!r}
scale = (96, 96)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, batch_sampler=None,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='CocoDataset', data_root=data_root,
                 metainfo=dict(classes=classes), ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=True),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CocoDataset', data_root=data_root,
                 metainfo=dict(classes=classes), ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='CocoMetric', metric={metrics!r},
                     ann_file=data_root + '/annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters},
                 val_interval={iters})
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)]
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4))
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(by_epoch=False, interval={iters}, max_keep_ckpts=1))
randomness = dict(seed=0)
backbone = dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None)
'''
TWO_STAGE = '''
model = dict(
    backbone=backbone,
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(num_classes=3, in_channels=64, fc_out_channels=128){mask}),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
'''
MASK_HEAD = (',\n                  mask_roi_extractor=dict(out_channels=64),'
             '\n                  mask_head=dict(num_classes=3, in_channels=64, '
             'conv_out_channels=64)')
RETINANET = '''
model = dict(
    backbone=backbone,
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    bbox_head=dict(num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2))
'''
# At 96 px the backbone's stages 2-4 give 12, 6 and 3 px maps; two extra levels give 2 and 1.
PYCONVSSD = '''
head_in_channels = (128, 256, 512, 128, 128)
model = dict(
    backbone=backbone,
    neck=dict(in_channels=(128, 256, 512), out_channels=head_in_channels, level_strides=(2, 1),
              level_paddings=(1, 0), last_kernel_size=2),
    bbox_head=dict(
        num_classes=3, in_channels=head_in_channels, feat_channels=64,
        pyconv_kernels=((3, 5, 7, 9), (3, 5), (3, ), (1, ), (1, )),
        anchor_generator=dict(input_size=96, strides=[8, 16, 32, 48, 96],
                              ratios=[[2], [2, 3], [2, 3], [2], [2]], basesize_ratio_range=None,
                              min_sizes=[10, 20, 36, 54, 72], max_sizes=[20, 36, 54, 72, 96])))
'''
DETECTORS = {
    'faster-rcnn': ('faster-rcnn_pyconvresnet50_fpn_1x_coco.py', TWO_STAGE.format(mask=''),
                    ['bbox'], 200),
    'retinanet': ('retinanet_pyconvresnet50_fpn_1x_coco.py', RETINANET, ['bbox'], 400),
    'mask-rcnn': ('mask-rcnn_pyconvresnet50_fpn_1x_coco.py', TWO_STAGE.format(mask=MASK_HEAD),
                  ['bbox', 'segm'], 200),
    'pyconvssd': ('pyconvssd300_pyconvresnet50_8xb8-120e_coco.py', PYCONVSSD, ['bbox'], 400),
}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_coco'))
    tiny_coco.write_dataset(root, NUM_TRAIN, NUM_VAL, SIZE, seed=0)
    return root


def small_config(path, name, data_root, iters=None):
    base, model, metrics, default_iters = DETECTORS[name]
    iters = iters or default_iters
    text = (f'_base_ = {os.path.join(CONFIGS, base)!r}\n' + SMALL_RUN.format(
        data_root=data_root, classes=tiny_coco.CLASSES, with_mask='segm' in metrics,
        metrics=metrics, iters=iters) + textwrap.dedent(model))
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def logged_metrics(work_dir):
    """The metrics tools/test.py logged (its json log's last record)."""
    (log, ) = glob.glob(os.path.join(work_dir, '*', '*.json'))
    with open(log) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def untrained_checkpoint(config, path):
    """The config's model as built and initialised, saved as a checkpoint tools/test.py reads."""
    from mmpyconv.runner import build_model
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    torch.save(dict(meta=dict(dataset_meta=dict(classes=tiny_coco.CLASSES)),
                    state_dict=model.state_dict()), path)
    return str(path)


@pytest.mark.parametrize('name', sorted(DETECTORS))
def test_trains_above_the_untrained_model(name, data_root, tmp_path, capsys):
    config = small_config(tmp_path / f'{name}.py', name, data_root)
    metrics = DETECTORS[name][2]
    untrained = untrained_checkpoint(config, tmp_path / 'untrained.pth')
    assert test_tool.main([config, untrained, '--work-dir', str(tmp_path / 'untrained')]) is None
    before = logged_metrics(str(tmp_path / 'untrained'))

    work_dir = str(tmp_path / 'train')
    assert train_tool.main([config, '--work-dir', work_dir]) is None
    (trained, ) = glob.glob(os.path.join(work_dir, 'iter_*.pth'))
    show_dir = str(tmp_path / 'show')
    extra = ['--show-dir', show_dir] if name == 'mask-rcnn' else []
    assert test_tool.main([config, trained, '--work-dir', str(tmp_path / 'test'), *extra]) is None
    after = logged_metrics(str(tmp_path / 'test'))
    # An untrained RetinaNet scores nothing above its threshold (focal loss starts its class
    # priors at 0.01): CocoMetric then reports no metric, i.e. nothing found.
    print(name, {k: (before.get(k, 0.0), after[k]) for k in after
                 if k.endswith(('mAP', 'mAP_50'))})
    for metric in metrics:
        key = f'coco/{metric}_mAP_50'
        assert after[key] >= before.get(key, 0.0) + 0.2, (key, before.get(key), after[key])
    if extra:  # mmdet's visualizer drew every test image, with boxes and masks
        drawn = glob.glob(os.path.join(show_dir, '**', '*.png'), recursive=True)
        assert len(drawn) == NUM_VAL, drawn
        # and the demo draws one image's detections, and lists them
        image = sorted(glob.glob(os.path.join(data_root, 'val', '*.png')))[0]
        out = tmp_path / 'demo.png'
        demo = load_tool('demo/det_demo.py')
        capsys.readouterr()
        assert demo.main([image, config, trained, '--out', str(out)]) is None
        printed = capsys.readouterr().out
        assert out.is_file() and 'detections scoring at least 0.3' in printed
        assert any(name in printed for name in tiny_coco.CLASSES), printed


def test_two_processes_through_the_launch_scripts(data_root, tmp_path):
    """tools/dist_train.sh (torchrun) and tools/slurm_test.sh (srun; here a stand-in) run a
    detector in two processes (gloo on a CPU)."""
    import sys

    from tool_harness import TOOLS, fake_srun_env, free_port, ok, run
    config = small_config(tmp_path / 'faster-rcnn.py', 'faster-rcnn', data_root, iters=6)
    work_dir = str(tmp_path / 'work')
    ok(run(['bash', os.path.join(TOOLS, 'dist_train.sh'), config, '2', '--work-dir', work_dir],
           env=dict(PYTHON=sys.executable, OMP_NUM_THREADS='1', PORT=str(free_port())),
           timeout=300))
    (trained, ) = glob.glob(os.path.join(work_dir, 'iter_*.pth'))
    output = ok(run(['bash', os.path.join(TOOLS, 'slurm_test.sh'), 'cpu', 'pyconv-det', config,
                     trained, '--work-dir', str(tmp_path / 'test')],
                    env=fake_srun_env(tmp_path), timeout=300))
    assert 'coco/bbox_mAP' in output  # rank 0 gathered both halves and scored them
