# SSD300 on COCO with a ResNet-50 backbone (torchvision's ImageNet weights), the baseline of
# PyConvSSD300: the same stages (2-4), SSDNeck levels, data and schedule, SSD's 3x3 predictors.
# (mmdet 3.3.0's SSDHead cannot predict, open-mmlab/mmdetection#11780: mmpyconv's tools apply
# the workaround of mmpyconv/compat.py to every mmdet run.)
_base_ = 'mmdet::ssd/ssd300_coco.py'

head_in_channels = (512, 1024, 2048, 512, 256, 256)
model = dict(
    data_preprocessor=dict(std=[58.395, 57.12, 57.375]),
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        in_channels=(512, 1024, 2048),
        out_channels=head_in_channels,
        level_strides=(2, 1, 1),
        level_paddings=(1, 0, 0),
        l2_norm_scale=None),
    bbox_head=dict(in_channels=head_in_channels))
