# The baseline of tsn_pyconvresnet50_8xb32-1x1x8-100e_kinetics400-rgb.py: mmaction2's TSN with
# an ImageNet-pretrained ResNet-50, unchanged.
_base_ = 'mmaction::recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py'
