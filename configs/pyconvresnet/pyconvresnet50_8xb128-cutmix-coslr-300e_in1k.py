# PyConvResNet-50 with the authors' stronger recipe: CutMix, 8 GPUs x 128 = 1024 images per
# iteration, SGD lr 0.4, cosine decay over 300 epochs, mixed precision (AmpOptimWrapper needs a
# GPU). Test at 224 here; at 320 with the `-320px` config.
_base_ = [
    '../_base_/models/pyconvresnet50.py',
    '../_base_/datasets/imagenet_bs32_pyconv.py',
    '../_base_/schedules/imagenet_bs1024_300e_coslr_amp_pyconv.py',
    'mmpretrain::_base_/default_runtime.py',
]
default_scope = 'mmpretrain'

# CutMix on every batch, Beta(1, 1) box areas (the CutMix paper's ImageNet setting; the PyConv
# authors name CutMix without its parameters). Mixed labels are soft, hence use_soft.
model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', loss_weight=1.0, use_soft=True)),
    train_cfg=dict(augments=dict(type='CutMix', alpha=1.0)))
train_dataloader = dict(batch_size=128)
