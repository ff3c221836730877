# TSN on Kinetics-400 with a PyConvResNet-50 backbone in place of ResNet-50: 8 segments of one
# frame, average consensus; data (decord), pipelines, head and 100-epoch schedule (8 GPUs x 32
# clips) are mmaction2's tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb, the
# baseline beside this config. PyConvResNet-50 ends 2048 wide at stride 32, as ResNet-50, so the
# TSN head is unchanged.
_base_ = 'mmaction::recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py'
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
# Checkpoints also carry the random states and the data position, so that --resume continues
# as if the run had not stopped (mmpyconv's ExactResumeHook, docs/resume.md; mmaction2's
# persistent_workers=True makes it warn: set train_dataloader.persistent_workers=False for it).
custom_hooks = [dict(type='ExactResumeHook')]

# ImageNet weights: the authors' pyconvresnet50 file as it is, or our converted one (README.md).
pretrained = 'checkpoints/pyconvresnet50.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyConvResNet',
        depth=50,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
