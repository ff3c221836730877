# PyConvSegNet on ADE20K with a plain ResNet-101 backbone; otherwise as ade20k_resnet50.py.
_base_ = './ade20k_resnet50.py'
model = dict(
    backbone=dict(depth=101, init_cfg=dict(checkpoint='torchvision://resnet101')))
