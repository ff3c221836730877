# PyConvResNet-18 on the small shapes dataset (tools/data/make_shapes_dataset.py): 6 classes of
# 32x32 images, 900 for training and 300 for validation. Trains on a 2-core CPU in minutes:
#
#   python tools/data/make_shapes_dataset.py data/shapes
#   python tools/train.py configs/pyconvresnet/pyconvresnet18_1xb32_shapes.py
_base_ = [
    '../_base_/models/pyconvresnet50.py',
    'mmpretrain::_base_/default_runtime.py',
]
default_scope = 'mmpretrain'

num_classes = 6
# Every residual block starts as the identity (zero-initialised last norm, an option of the
# original code too): stabler from scratch on a short schedule.
model = dict(
    backbone=dict(depth=18, zero_init_residual=True),
    head=dict(in_channels=512, num_classes=num_classes, topk=(1, )))

data_root = 'data/shapes'
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.6, 1.0), backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

tta_model = dict(type='AverageClsScoreTTA')
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='RandomFlip', prob=0.),
                dict(type='RandomFlip', prob=1., direction='horizontal'),
            ],
            [dict(type='PackInputs')],
        ]),
]

# The authors' optimiser (SGD, momentum 0.9, weight decay 1e-4, lr 0.1 per 256 images, here
# 0.05 for a batch of 32): one epoch of linear warm-up, then cosine decay.
max_epochs = 8
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True, begin=1,
         end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=2)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=2, max_keep_ckpts=2))
randomness = dict(seed=0)
