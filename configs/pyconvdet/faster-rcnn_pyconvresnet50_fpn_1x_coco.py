# Faster R-CNN + FPN on COCO 2017 with a PyConvResNet-50 backbone in place of ResNet-50; neck,
# heads, data and 1x schedule (12 epochs, 8 GPUs x 2 images) are mmdet's
# faster-rcnn_r50_fpn_1x_coco, the baseline beside this config. PyConvResNet-50's stages are
# 256/512/1024/2048 wide at strides 4/8/16/32, as ResNet-50's, so the FPN is unchanged.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
# Checkpoints also carry the random states and the data position, so that --resume continues
# as if the run had not stopped (mmpyconv's ExactResumeHook, docs/resume.md).
custom_hooks = [dict(type='ExactResumeHook')]

# The authors' ImageNet checkpoint (github.com/iduta/pyconv): the backbone reads its key layout
# itself when it loads it; see README.md.
pretrained = 'checkpoints/pyconvresnet50.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyConvResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,  # stem and stage 1, as mmdet freezes ResNet's
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
