# I3D-style recognizer on Kinetics-400 with PyConvResNet3d-50: clips of 32 frames taken every 2nd
# frame, the 2D ImageNet PyConvResNet-50 inflated over time. Data (decord), pipelines, head and
# 100-epoch schedule (8 GPUs x 8 clips) are mmaction2's
# i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb, the baseline beside this config,
# and so are the backbone's temporal settings: stem (5, 7, 7) at temporal stride 2, temporal
# max-pools after the stem and the first stage (32 frames -> 4), half the blocks inflated.
_base_ = 'mmaction::recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py'
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
# Checkpoints also carry the random states and the data position, so that --resume continues
# as if the run had not stopped (mmpyconv's ExactResumeHook, docs/resume.md; mmaction2's
# persistent_workers=True makes it warn: set train_dataloader.persistent_workers=False for it).
custom_hooks = [dict(type='ExactResumeHook')]

# 2D ImageNet weights (the authors' file or ours), inflated when they load.
pretrained = 'checkpoints/pyconvresnet50.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyConvResNet3d',
        depth=50,
        pretrained2d=True,
        pretrained=pretrained,
        conv1_kernel=(5, 7, 7),
        conv1_stride_t=2,
        pool1_stride_t=2,
        inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
        norm_eval=False,
        zero_init_residual=False))
