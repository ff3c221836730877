# RetinaNet + FPN on COCO 2017, 1x schedule, with PyConvHGResNet-50 (wider stages, high
# grouping; its stages have the same output widths as PyConvResNet-50's, so the FPN is
# unchanged); otherwise as the PyConvResNet-50 config.
_base_ = './retinanet_pyconvresnet50_fpn_1x_coco.py'
pretrained = 'checkpoints/pyconvhgresnet50.pth'
model = dict(
    backbone=dict(type='PyConvHGResNet', depth=50, init_cfg=dict(checkpoint=pretrained)))
