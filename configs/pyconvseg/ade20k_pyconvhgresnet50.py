# PyConvSegNet on ADE20K with PyConvHGResNet-50 (wider stages, high grouping; its stages have the
# same output widths as PyConvResNet's, so the heads are unchanged); otherwise as ade20k.py.
_base_ = './ade20k.py'
pretrained = 'checkpoints/pyconvhgresnet50.pth'
model = dict(
    backbone=dict(type='PyConvHGResNet', depth=50, init_cfg=dict(checkpoint=pretrained)))
