# The baseline of i3d_pyconvresnet3d50_8xb8-32x2x1-100e_kinetics400-rgb.py: mmaction2's I3D with
# an inflated ImageNet ResNet-50, unchanged.
_base_ = 'mmaction::recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py'
