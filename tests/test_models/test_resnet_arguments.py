"""ResNet's arguments on the PyConv backbones: each with a meaning or a one-line refusal, and
pretrained checkpoints of other networks refused before they load."""
import pytest
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from mmpyconv.models import PyConvHGResNet, PyConvResNet


@pytest.mark.parametrize('cls', [PyConvResNet, PyConvHGResNet])
def test_resnet_defaults_are_accepted(cls):
    """What a ResNet config spells out for its defaults builds the same network."""
    plain = cls(depth=50)
    spelled = cls(depth=50, style='pytorch', deep_stem=False, avg_down=False,
                  contract_dilation=False, dcn=None, stage_with_dcn=(False, ) * 4, plugins=None,
                  multi_grid=None, drop_path_rate=0.0)
    assert list(plain.state_dict()) == list(spelled.state_dict())


@pytest.mark.parametrize('kwargs,fragments', [
    (dict(style='caffe'), ["style='caffe'", 'drop style']),
    (dict(deep_stem=True), ['deep_stem=True', '7x7/2', 'drop deep_stem']),
    (dict(avg_down=True), ['avg_down=True', 'max-pool', 'drop avg_down']),
    (dict(dcn=dict(type='DCNv2', deform_groups=1), stage_with_dcn=(False, True, True, True)),
     ['no deformable convs', 'drop dcn and stage_with_dcn']),
    (dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)),
     ['strides=(1, 2, 1, 1)', 'strides=(2, 2, 1, 1) for output stride 8']),
    (dict(pretrained='open-mmlab://resnet50_v1c'),
     ["pretrained='open-mmlab://resnet50_v1c'", 'model.pretrained=None']),
    (dict(init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
     ["init_cfg.checkpoint='torchvision://resnet50'", 'init_cfg=None']),
    (dict(multi_grid=(1, 2)), ['multi_grid=(1, 2)', 'one dilation per block']),
])
def test_refused_with_what_to_do(kwargs, fragments):
    with pytest.raises(ValueError) as info:
        PyConvResNet(depth=50, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert '\n' not in str(info.value)


def test_the_stride_mapping_gives_resnets_output_strides():
    """ResNet d8 (1, 2, 1, 1) is (2, 2, 1, 1) here: the same feature sizes as ResNet-50 d8."""
    from mmengine.registry import DefaultScope
    from mmseg.models.backbones import ResNet
    x = torch.rand(1, 3, 64, 64)
    with DefaultScope.overwrite_default_scope('mmseg'):
        resnet = ResNet(depth=50, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4))
    resnet.eval()  # (mmseg's ResNet.train returns None)
    pyconv = PyConvResNet(depth=50, strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4),
                          out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        assert [o.shape for o in pyconv(x)] == [o.shape for o in resnet(x)]


def test_contract_dilation_and_multi_grid():
    model = PyConvResNet(depth=50, strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4),
                         contract_dilation=True, multi_grid=(1, 2, 4))
    assert [b.conv2.dilation for b in model.layer3][:2] == [(1, 1), (2, 2)]
    assert [b.conv2.dilation for b in model.layer4] == [(1, 1), (2, 2), (4, 4)]
    assert [lvl.padding for lvl in model.layer4[2].conv2.levels] == [(4, 4)]  # 'same' at d4
    plain = PyConvResNet(depth=50, strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4))
    assert [b.conv2.dilation for b in plain.layer3][:2] == [(2, 2), (2, 2)]
    assert model.eval()(torch.rand(1, 3, 64, 64))[0].shape == (1, 2048, 8, 8)


def test_drop_path_grows_over_the_blocks_and_is_off_in_eval():
    model = PyConvResNet(depth=18, drop_path_rate=0.3)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert len(rates) == 7  # 8 blocks, the first at rate 0
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.3)
    x = torch.rand(2, 3, 32, 32)
    reference = PyConvResNet(depth=18)
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x)[0], reference.eval()(x)[0])


def test_plugins_in_the_bottleneck():
    plugins = [dict(cfg=dict(type='ContextBlock', ratio=1. / 4), stages=(False, True, True, True),
                    position='after_conv3'),
               dict(cfg=dict(type='GeneralizedAttention', spatial_range=-1, num_heads=8,
                             attention_type='0010', kv_stride=2),
                    stages=(False, False, True, True), position='after_conv2')]
    model = PyConvResNet(depth=50, plugins=plugins)
    assert not hasattr(model.layer1[0], 'context_block')
    assert isinstance(model.layer2[0].context_block, nn.Module)
    assert model.layer3[0].plugin_names == dict(after_conv1=[], after_conv2=['gen_attention_block'],
                                                after_conv3=['context_block'])
    out = model(torch.rand(1, 3, 64, 64))[0]
    out.mean().backward()
    assert model.layer4[0].context_block.channel_add_conv[0].weight.grad is not None
    with pytest.raises(ValueError, match='basic blocks of PyConvResNet-18 take none'):
        PyConvResNet(depth=18, plugins=plugins)


def _resnet50_file(tmp_path):
    import torchvision
    path = tmp_path / 'resnet50.pth'
    torch.save(torchvision.models.resnet50().state_dict(), path)
    return str(path)


def test_a_resnet_checkpoint_is_refused_before_loading(tmp_path):
    path = _resnet50_file(tmp_path)
    model = PyConvResNet(depth=50, init_cfg=dict(type='Pretrained', checkpoint=path))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r'fills 3 of the 39 pyramid-level tensors of '
                       r'PyConvResNet \(\d+ of its \d+ tensors\)') as info:
        model.init_weights()
    assert 'model.pretrained=None' in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_classifier_checkpoint_needs_its_prefix(tmp_path):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(dict(
            type='ImageClassifier', backbone=dict(type='PyConvResNet', depth=18),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=512)))
    path = str(tmp_path / 'classifier.pth')
    torch.save(dict(state_dict=classifier.state_dict()), path)
    with pytest.raises(ValueError, match="add prefix='backbone.'"):
        PyConvResNet(depth=18, init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    model = PyConvResNet(depth=18,
                         init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.conv1.weight, classifier.backbone.conv1.weight)
