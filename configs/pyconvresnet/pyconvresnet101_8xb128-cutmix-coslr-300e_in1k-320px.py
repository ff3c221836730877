# PyConvResNet-101, stronger recipe, tested on 320x320 centre crops (see the PyConvResNet-50
# 320px config for the resize).
_base_ = './pyconvresnet50_8xb128-cutmix-coslr-300e_in1k-320px.py'
default_scope = 'mmpretrain'
model = dict(backbone=dict(depth=101))
