# PyConvHGResNet-50 on ImageNet-1k with the authors' recipe: 8 GPUs x 32 images, SGD lr 0.1,
# 90 epochs, lr x0.1 at 30/60/80; RandomResizedCrop 224 + flip; test 256 -> centre crop 224.
_base_ = [
    '../_base_/models/pyconvhgresnet50.py',
    '../_base_/datasets/imagenet_bs32_pyconv.py',
    '../_base_/schedules/imagenet_bs256_90e_pyconv.py',
    'mmpretrain::_base_/default_runtime.py',
]
default_scope = 'mmpretrain'
