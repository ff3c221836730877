# Baseline: mmdet's Mask R-CNN + FPN with ResNet-50 (torchvision's ImageNet weights), 1x
# schedule, unchanged, so that it runs with this repository's tools and is listed in its
# metafile beside the PyConv backbones.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
