# PyConvSegNet on ADE20K with PyConvHGResNet-50 (wider stages, high grouping; its stages have the
# same output widths as PyConvResNet's, so the heads are unchanged); otherwise as the
# PyConvResNet-50 config.
_base_ = './pyconvsegnet_pyconvresnet50-d8_4xb4-126k_ade20k-473x473.py'
pretrained = 'checkpoints/pyconvhgresnet50.pth'
model = dict(
    backbone=dict(type='PyConvHGResNet', depth=50, init_cfg=dict(checkpoint=pretrained)))
