# Baseline for comparison: PSPNet's head (pyramid pooling 1/2/3/6, 512 channels) on the same
# dilated ResNet-50, with the same auxiliary head, data and schedule as PyConvSegNet's ResNet-50
# config, so that only the head differs (the authors' PSPNet baseline setting).
_base_ = './pyconvsegnet_r50-d8_4xb4-126k_ade20k-473x473.py'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='PSPHead',
        in_channels=2048,
        in_index=3,
        channels=512,
        pool_scales=(1, 2, 3, 6),
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)))
