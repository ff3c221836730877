# Baseline: mmdet's RetinaNet + FPN with ResNet-50 (torchvision's ImageNet weights), 1x
# schedule, unchanged, so that it runs with this repository's tools and is listed in its
# metafile beside the PyConv backbones.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
