# PyConvSegNet made tiny, on the synthetic ADE20K-format scenes of tools/data/make_tiny_ade20k.py
# (64x64 images, six classes): the run behind the tiny-ADE20K numbers of docs/segmentation.md,
# about a minute and a half on a 2-core CPU.
#
#   python tools/data/make_tiny_ade20k.py data/tiny_ade20k --num-train 160 --num-val 24
#   python tools/train.py configs/pyconvseg/tiny/pyconvsegnet_pyconvresnet18_tiny-ade20k-64x64.py
#   python tools/test.py configs/pyconvseg/tiny/pyconvsegnet_pyconvresnet18_tiny-ade20k-64x64.py \
#       work_dirs/pyconvsegnet_pyconvresnet18_tiny-ade20k-64x64/iter_120.pth [--tta]
#
# It is configs/pyconvseg/ade20k.py (PyConvSegNet, output stride 8, PyConvPH + FCN auxiliary
# head, SGD with poly decay) with: PyConvResNet-18 at half width and no ImageNet weights, narrow
# heads, pipelines for 64x64 images (random scale 0.75-1.5, crop, flip; whole-image inference;
# multi-scale + flip testing at 48, 64 and 80), batch 4, 120 iterations, validation and a
# checkpoint at the end, seed 0. Kept out of metafile.yml: it is a demonstration, not a model.
_base_ = '../ade20k.py'

data_root = 'data/tiny_ade20k'
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=18,
        stem_channels=32,
        base_channels=32,
        pyconv_groups=((1, 2, 4, 8), (1, 2, 4), (1, 2), (1, )),
        init_cfg=None),
    decode_head=dict(in_channels=256, local_channels=64, global_channels=64, channels=32),
    auxiliary_head=dict(in_channels=128, channels=32),
    test_cfg=dict(_delete_=True, mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CheckSegMap'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(64, 64), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CheckSegMap'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CheckSegMap'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(s, s), keep_ratio=True) for s in (48, 64, 80)],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ])
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 120
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters))
randomness = dict(seed=0)
