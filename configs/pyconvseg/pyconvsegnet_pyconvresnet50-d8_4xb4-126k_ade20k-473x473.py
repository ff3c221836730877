# PyConvSegNet on ADE20K (150 classes): PyConvResNet-50 at output stride 8 ("d8") + the PyConv
# parsing head (PyConvPH), with an FCN auxiliary head on stage 3 (weight 0.4), as in Duta et al.
# 2020. The recipe follows the authors' (github.com/iduta/pyconvsegnet, ADE20K config): 4 GPUs x 4
# images, 473x473 crops, random scale 0.5-2 / rotation +-10 deg / flip, SGD lr 0.01 (heads x10),
# poly 0.9, 100 epochs (126k iterations); inference on images resized to a 512 long side, sliding
# 473x473 windows. configs/pyconvseg/ade20k.py is this config under its first name.
_base_ = ['mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py']
custom_imports = dict(
    imports=['mmpyconv', 'mmpyconv.models.decode_heads', 'mmpyconv.datasets.seg_transforms'],
    allow_failed_imports=False)
# Checkpoints also carry the random states and the data position, so that --resume continues
# as if the run had not stopped (mmpyconv's ExactResumeHook, docs/resume.md).
custom_hooks = [dict(type='ExactResumeHook')]

# The authors' ImageNet checkpoint of the backbone (github.com/iduta/pyconv): the backbone reads
# its key layout itself when it loads it; see README.md (an mmpretrain checkpoint also works, with
# prefix='backbone.').
pretrained = 'checkpoints/pyconvresnet50.pth'
num_classes = 150
norm_cfg = dict(type='SyncBN', requires_grad=True)
# 8k+1, as the original: logits upsampled from stride 8 with align_corners=True land exactly.
crop_size = (473, 473)
test_scale = 512  # long side at test time (the original's base_size)

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='PyConvResNet',
        depth=50,
        strides=(2, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(
        type='PyConvPH',
        in_channels=2048,
        in_index=3,
        channels=256,
        local_reduction=4,
        local_channels=512,
        global_channels=512,
        bins=9,
        pyconv_kernels=(3, 5, 7, 9),
        pyconv_groups=(1, 4, 8, 16),
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=1024,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4,
            avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(316, 316)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CheckSegMap'),  # mask present and of the image's size, or a clear error
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomRotate', prob=0.5, degree=10, pad_val=0, seg_pad_val=255),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CheckSegMap'),
    dict(type='Resize', scale=(test_scale, test_scale), keep_ratio=True),
    # Annotations load after Resize: metrics compare with the full-size mask.
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# Multi-scale + flip testing (tools/test.py --tta): long side 512 x 0.5 ... 1.75, as the
# original's multi-scale evaluation; SegTTAModel averages the softmax of all 12 views.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CheckSegMap'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=(int(test_scale * r), int(test_scale * r)),
                     keep_ratio=True) for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ])
]
tta_model = dict(type='SegTTAModel')

train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# 100 epochs of ADE20K's 20,210 training images at 4 GPUs x 4 images.
max_iters = 126300
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=None,
    paramwise_cfg=dict(custom_keys={
        'decode_head': dict(lr_mult=10.0),
        'auxiliary_head': dict(lr_mult=10.0)
    }))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters // 10,
                    max_keep_ckpts=3, save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
