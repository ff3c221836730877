# PyConvResNet-101 with the authors' stronger recipe (see the PyConvResNet-50 config).
_base_ = './pyconvresnet50_8xb128-cutmix-coslr-300e_in1k.py'
default_scope = 'mmpretrain'
model = dict(backbone=dict(depth=101))
