# PyConvSegNet on ADE20K with PyConvResNet-101; everything else as ade20k.py.
_base_ = './ade20k.py'
pretrained = 'checkpoints/pyconvresnet101.pth'
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint=pretrained)))
