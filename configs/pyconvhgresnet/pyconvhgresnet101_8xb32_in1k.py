# PyConvHGResNet-101 on ImageNet-1k, the authors' recipe (see pyconvhgresnet50_8xb32_in1k.py).
_base_ = './pyconvhgresnet50_8xb32_in1k.py'
default_scope = 'mmpretrain'
model = dict(backbone=dict(depth=101))
