# ImageNet-1k as the PyConv authors loaded it (torchvision, PIL, bilinear): train
# RandomResizedCrop 224 + horizontal flip; test resize the short side to 256, centre crop 224.
# mmpretrain's `imagenet_bs32_pil_resize` is exactly that pipeline; this adds flip TTA.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py'

tta_model = dict(type='AverageClsScoreTTA')
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='RandomFlip', prob=0.),
                dict(type='RandomFlip', prob=1., direction='horizontal'),
            ],
            [dict(type='PackInputs')],
        ]),
]
