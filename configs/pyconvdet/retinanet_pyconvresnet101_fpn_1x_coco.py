# RetinaNet + FPN on COCO 2017, 1x schedule, with PyConvResNet-101; otherwise as the
# PyConvResNet-50 config.
_base_ = './retinanet_pyconvresnet50_fpn_1x_coco.py'
pretrained = 'checkpoints/pyconvresnet101.pth'
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint=pretrained)))
