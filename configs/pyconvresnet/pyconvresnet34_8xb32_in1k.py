# PyConvResNet-34 on ImageNet-1k, the authors' recipe (see pyconvresnet50_8xb32_in1k.py).
# Basic blocks (PyConv -> 1x1 conv, expansion 1), so the last stage has 512 channels.
_base_ = './pyconvresnet50_8xb32_in1k.py'
default_scope = 'mmpretrain'
model = dict(backbone=dict(depth=34), head=dict(in_channels=512))
