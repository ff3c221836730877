# PyConvResNet-50 as an ImageNet-1k classifier: backbone -> global average pooling -> linear.
# The configs built on this file import mmpyconv through it (custom_imports is set only here).
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
# Checkpoints also carry the random states and the data position, so that --resume continues
# as if the run had not stopped (mmpyconv's ExactResumeHook, docs/resume.md).
custom_hooks = [dict(type='ExactResumeHook')]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='PyConvResNet', depth=50, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ))
