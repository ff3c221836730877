# PyConvSegNet on ADE20K with a plain ResNet-50 backbone (torchvision layout: 7x7 stem and
# max-pool, stride on the 3x3 conv), dilated to output stride 8 as the original: the published
# "ResNet-50" row of PyConvSegNet. Head, data and schedule as the PyConvResNet-50 config.
_base_ = './pyconvsegnet_pyconvresnet50-d8_4xb4-126k_ade20k-473x473.py'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        style='pytorch',
        contract_dilation=False,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')))
