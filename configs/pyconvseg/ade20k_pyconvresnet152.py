# PyConvSegNet on ADE20K with PyConvResNet-152; everything else as ade20k.py.
_base_ = './ade20k.py'
pretrained = 'checkpoints/pyconvresnet152.pth'
model = dict(backbone=dict(depth=152, init_cfg=dict(checkpoint=pretrained)))
