# PyConvSSD512 on COCO: PyConvSSD300's network (see pyconvssd300_pyconvresnet50_8xb8-120e_coco.py)
# at 512 px, with SSD512's seven levels (strides 8 to 512) and anchors; data, schedule and
# augmentation are mmdet's SSD512's. (mmengine cannot inherit both mmdet's SSD512 and our SSD300,
# which share every key, so the model's PyConv parts are written out here too.)
_base_ = 'mmdet::ssd/ssd512_coco.py'
custom_imports = dict(
    imports=['mmpyconv', 'mmpyconv.models.dense_heads'], allow_failed_imports=False)
# mmdet's SSD hooks (NumClassCheckHook, CheckInvalidLossHook), and checkpoints that also carry
# the random states and the data position, so that --resume continues as if the run had not
# stopped (mmpyconv's ExactResumeHook, docs/resume.md).
custom_hooks = _base_.custom_hooks + [dict(type='ExactResumeHook')]

# ssd_pyconv_kernels of the map sizes at 512 px (64, 32, 16, 8, 4, 2, 1).
pyconv_kernels = ((3, 5, 7, 9), (3, 5, 7, 9), (3, 5, 7, 9), (3, 5, 7), (3, ), (1, ), (1, ))
head_in_channels = (512, 1024, 2048, 512, 256, 256, 256)
model = dict(
    data_preprocessor=dict(std=[58.395, 57.12, 57.375]),
    backbone=dict(
        _delete_=True,
        type='PyConvResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/pyconvresnet50.pth')),
    neck=dict(
        in_channels=(512, 1024, 2048),
        out_channels=head_in_channels,
        level_strides=(2, 2, 2, 1),
        level_paddings=(1, 1, 1, 1),
        l2_norm_scale=None,
        last_kernel_size=4),
    bbox_head=dict(
        type='PyConvSSDHead',
        in_channels=head_in_channels,
        pyconv_kernels=pyconv_kernels,
        feat_channels=256))
