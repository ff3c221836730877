# PyConvResNet-152 on ImageNet-1k, the authors' recipe (see pyconvresnet50_8xb32_in1k.py).
_base_ = './pyconvresnet50_8xb32_in1k.py'
default_scope = 'mmpretrain'
model = dict(backbone=dict(depth=152))
