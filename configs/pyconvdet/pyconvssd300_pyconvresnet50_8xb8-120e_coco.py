# PyConvSSD300 on COCO: SSD with PyConvResNet-50 (stages 2-4, strides 8/16/32) and SSDNeck's extra
# downsampling levels (64, 100 and 300 px strides), whose per-level predictions read a PyConv of
# the level (PyConvSSDHead: kernels 3-9 on the large maps, fewer on the small ones; see
# README.md). Data, anchors, schedule (8 GPUs x 8 images, 24 epochs of a 5x repeated COCO = 120
# epochs) and augmentation are mmdet's SSD300's.
_base_ = 'mmdet::ssd/ssd300_coco.py'
custom_imports = dict(
    imports=['mmpyconv', 'mmpyconv.models.dense_heads'], allow_failed_imports=False)
# mmdet's SSD hooks (NumClassCheckHook, CheckInvalidLossHook), and checkpoints that also carry
# the random states and the data position, so that --resume continues as if the run had not
# stopped (mmpyconv's ExactResumeHook, docs/resume.md).
custom_hooks = _base_.custom_hooks + [dict(type='ExactResumeHook')]

# The PyConv levels of each head level: ssd_pyconv_kernels of the map sizes at 300 px
# (38, 19, 10, 5, 3, 1).
pyconv_kernels = ((3, 5, 7, 9), (3, 5, 7, 9), (3, 5, 7, 9), (3, 5), (3, ), (1, ))
head_in_channels = (512, 1024, 2048, 512, 256, 256)
model = dict(
    # PyConvResNet's ImageNet weights expect torchvision's normalisation (VGG's caffe weights,
    # which mmdet's SSD uses, take std 1).
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
        level_strides=(2, 1, 1),
        level_paddings=(1, 0, 0),
        l2_norm_scale=None),
    bbox_head=dict(
        type='PyConvSSDHead',
        in_channels=head_in_channels,
        pyconv_kernels=pyconv_kernels,
        feat_channels=256))
