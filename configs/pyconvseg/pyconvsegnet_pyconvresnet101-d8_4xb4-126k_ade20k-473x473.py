# PyConvSegNet on ADE20K with PyConvResNet-101; everything else as the PyConvResNet-50 config.
_base_ = './pyconvsegnet_pyconvresnet50-d8_4xb4-126k_ade20k-473x473.py'
pretrained = 'checkpoints/pyconvresnet101.pth'
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint=pretrained)))
