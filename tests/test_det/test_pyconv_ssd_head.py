"""PyConvSSDHead: each level's PyConv fits its feature map, the head predicts as SSD's does,
and mmdet 3.3.0's SSD heads can predict (the compat workaround)."""
import glob
import os

import pytest
import torch
from mmengine.config import Config, ConfigDict

from mmpyconv.models.dense_heads import PyConvSSDHead, ssd_pyconv_kernels
from mmpyconv.ops import PyConv2d

from tool_harness import ROOT

SSD_CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'pyconvdet', 'pyconvssd*.py')))


@pytest.mark.parametrize('path', SSD_CONFIGS, ids=os.path.basename)
def test_each_level_has_the_kernels_that_fit_its_map(path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(path)
    size = cfg.model.bbox_head.anchor_generator.input_size
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
        feats = model.extract_feat(torch.empty(1, 3, size, size))
    sizes = [f.shape[-1] for f in feats]
    assert sizes[-1] == 1 and len(sizes) == len(cfg.model.bbox_head.in_channels)
    assert tuple(cfg.model.bbox_head.pyconv_kernels) == ssd_pyconv_kernels(sizes)
    for pyconv, feat in zip(model.bbox_head.pyconvs, feats):
        assert isinstance(pyconv.conv, PyConv2d)
        assert max(pyconv.conv.kernel_size) <= max(feat.shape[-1], 1)


def test_kernel_rule():
    assert ssd_pyconv_kernels((38, 9, 8, 5, 4, 3, 2, 1)) == (
        (3, 5, 7, 9), (3, 5, 7, 9), (3, 5, 7), (3, 5), (3, ), (3, ), (1, ), (1, ))


def _anchors(input_size=96):
    return dict(type='SSDAnchorGenerator', scale_major=False, input_size=input_size,
                strides=[8, 16, 32], ratios=[[2], [2, 3], [2]], basesize_ratio_range=None,
                min_sizes=[10, 30, 60], max_sizes=[30, 60, 96])


def _test_cfg(max_per_img):
    return ConfigDict(nms_pre=100, nms=dict(type='nms', iou_threshold=0.45), min_bbox_size=0,
                      score_thr=0.0, max_per_img=max_per_img)


def test_predictions_have_ssds_shapes_and_decode():
    head = PyConvSSDHead(num_classes=3, in_channels=(32, 64, 64), feat_channels=64,
                         pyconv_kernels=((3, 5, 7, 9), (3, 5), (3, )),
                         anchor_generator=_anchors(), test_cfg=_test_cfg(20))
    head.init_weights()
    feats = [torch.rand(2, c, s, s) for c, s in zip((32, 64, 64), (12, 6, 3))]
    scores, boxes = head.eval()(feats)
    for score, box, priors, feat in zip(scores, boxes, head.num_base_priors, feats):
        assert score.shape == (2, priors * 4, *feat.shape[2:])  # 3 classes + background
        assert box.shape == (2, priors * 4, *feat.shape[2:])
    metas = [dict(img_shape=(96, 96), scale_factor=(1.0, 1.0))] * 2
    results = head.predict_by_feat(scores, boxes, batch_img_metas=metas, rescale=False)
    assert len(results) == 2 and len(results[0].bboxes) == 20


@pytest.mark.parametrize('kwargs,match', [
    (dict(stacked_convs=2), 'stacked_convs'),
    (dict(pyconv_cfg=dict(type='PyConv2d', groups=(1, 4))), "pyconv_cfg sets 'groups'"),
    (dict(pyconv_kernels=((3, ), (3, ))), 'pyconv_kernels has 2 entries'),
])
def test_bad_arguments(kwargs, match):
    args = dict(num_classes=3, in_channels=(32, 64, 64), feat_channels=32,
                pyconv_kernels=((3, 5), (3, ), (1, )), anchor_generator=_anchors())
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        PyConvSSDHead(**args)


def test_mmdets_own_ssd_head_predicts_after_the_workaround():
    """open-mmlab/mmdetection#11780: SSDHead.predict_by_feat reads a loss_cls it never has."""
    from mmdet.models.dense_heads import SSDHead

    from mmpyconv.compat import patch_mmdet_ssd_head
    assert hasattr(SSDHead, 'loss_cls')  # importing mmpyconv.models.dense_heads applied it
    assert patch_mmdet_ssd_head() is False  # idempotent
    head = SSDHead(num_classes=3, in_channels=(32, 64, 64), anchor_generator=_anchors(),
                   test_cfg=_test_cfg(10))
    feats = [torch.rand(1, c, s, s) for c, s in zip((32, 64, 64), (12, 6, 3))]
    scores, boxes = head(feats)
    (result, ) = head.predict_by_feat(scores, boxes,
                                      batch_img_metas=[dict(img_shape=(96, 96),
                                                            scale_factor=(1.0, 1.0))])
    assert len(result.bboxes) == 10
