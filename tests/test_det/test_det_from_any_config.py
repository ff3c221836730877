"""PyConvResNet swapped into an mmdet config the user writes, with FPN on a subset of the
stages and more frozen stages than mmdet's default: builds and trains a step."""
import textwrap

import pytest
import torch
from mmengine.config import Config


@pytest.mark.parametrize('out_indices,frozen_stages', [((1, 2, 3), 2), ((0, 2), 0)])
def test_fpn_on_a_subset_of_stages(tmp_path, out_indices, frozen_stages):
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs

    from mmpyconv.models import PyConvResNet
    widths = [PyConvResNet(depth=50).stage_channels[i] for i in out_indices]
    config = tmp_path / 'user.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
        custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
        model = dict(
            backbone=dict(_delete_=True, type='PyConvResNet', depth=50,
                          out_indices={out_indices!r}, frozen_stages={frozen_stages},
                          norm_eval=True),
            neck=dict(in_channels={widths!r}, start_level=0, num_outs=5))
        '''))
    cfg = Config.fromfile(str(config))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2,
                                                  num_items=[1, 2], num_classes=80), True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    backbone = model.backbone
    for name, param in backbone.named_parameters():
        stage = int(name[5]) if name.startswith('layer') else 0
        trained = stage > frozen_stages and stage <= max(out_indices) + 1
        assert (param.grad is not None and bool(param.grad.abs().sum() > 0)) == trained, name
    feats = backbone(data['inputs'])
    assert [f.shape[1] for f in feats] == widths
