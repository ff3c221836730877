# PyConvSegNet on ADE20K with PyConvResNet-152; everything else as the PyConvResNet-50 config.
_base_ = './pyconvsegnet_pyconvresnet50-d8_4xb4-126k_ade20k-473x473.py'
pretrained = 'checkpoints/pyconvresnet152.pth'
model = dict(backbone=dict(depth=152, init_cfg=dict(checkpoint=pretrained)))
