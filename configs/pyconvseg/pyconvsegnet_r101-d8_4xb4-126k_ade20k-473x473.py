# PyConvSegNet on ADE20K with a plain ResNet-101 backbone; otherwise as the ResNet-50 config.
_base_ = './pyconvsegnet_r50-d8_4xb4-126k_ade20k-473x473.py'
model = dict(
    backbone=dict(depth=101, init_cfg=dict(checkpoint='torchvision://resnet101')))
