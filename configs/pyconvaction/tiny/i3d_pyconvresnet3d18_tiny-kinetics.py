# The I3D-style recognizer with PyConvResNet3d-18 on the small synthetic Kinetics-layout set that
# tools/data/make_tiny_kinetics.py writes (4 classes: a small or a large disc, moving left or right;
# 64x64 frames): the Kinetics-400 config shrunk to what trains on a CPU in a minute or two. The
# tests train it, and the numbers in configs/pyconvaction/README.md come from it. Its temporal
# kernels see the motion, so it can tell the direction as well as the size.
_base_ = '../i3d_pyconvresnet3d50_8xb8-32x2x1-100e_kinetics400-rgb.py'

data_root = 'data/tiny_kinetics'
num_classes = 4
# A 16-wide stem and first stage (128 at the end), the pyramid's groups shrunk with the widths.
tiny_widths = dict(stem_channels=16, base_channels=16,
                   pyconv_groups=((1, 2, 4, 4), (1, 2, 4), (1, 2), (1, )))
model = dict(
    backbone=dict(depth=18, pretrained=None, conv1_kernel=(3, 7, 7), conv1_stride_t=1,
                  pool1_stride_t=1, inflate=1, **tiny_widths),
    cls_head=dict(num_classes=num_classes, in_channels=128, dropout_ratio=0.0))

# The direction of motion is the label: no flip, no crop that could hide the disc.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=4, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=4, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        ann_file=f'{data_root}/kinetics400_train_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/videos_train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/videos_val'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric', metric_list=('top_k_accuracy', 'mean_class_accuracy'),
                     metric_options=dict(top_k_accuracy=dict(topk=(1, 2))))
test_evaluator = val_evaluator

max_epochs = 6
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_begin=1, val_interval=1)
optim_wrapper = dict(
    _delete_=True, optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=40, norm_type=2))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True)]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1), logger=dict(interval=4))
randomness = dict(seed=0, deterministic=True)
auto_scale_lr = dict(enable=False, base_batch_size=8)
