"""The authors' ImageNet checkpoints: conversion for mmpretrain and direct backbone loading.

The original networks are re-implemented here, independently of mmpyconv, from the documented
layout of their state dicts (github.com/iduta/pyconv, models/pyconvresnet.py and
pyconvhgresnet.py): stem ``conv1``/``bn1`` (7x7/2, no max-pool); stages ``layer1..4`` whose
first block is strided on its PyConv; a PyConv of L > 1 levels holds ``conv2_1..conv2_L``
(kernels 3/5/7/9, widths C/4 each for 4 levels, C/4, C/4, C/2 for 3, C/2 each for 2), one level
is a single conv; bottleneck ``conv1`` 1x1, ``conv2`` PyConv, ``conv3`` 1x1 expand; basic block
(``PyConvBasicBlock2``) ``conv1`` PyConv, ``conv2`` 1x1; the shortcut is max-pool 3x3/2 ->
1x1 conv -> BN as ``downsample.{0,1,2}`` when strided and widening, the max-pool alone when only
strided; global average pooling and ``fc``. Random weights and BN statistics from such a
network must give the same logits after conversion, in mmpretrain's ImageClassifier.
"""
import os
import sys

import pytest
import torch
import torch.nn as nn

from mmpyconv.convert import ConversionError, convert_original_classifier, infer_original_arch
from mmpyconv.models.backbones import original_layout_pre_hook

from tool_harness import ROOT, TOOLS, load_tool, run

PLANS = {
    'PyConvResNet': dict(base=64, expansion=4, groups=[[1, 4, 8, 16], [1, 4, 8], [1, 4], [1]]),
    'PyConvHGResNet': dict(base=128, expansion=2,
                           groups=[[32, 32, 32, 32], [32, 64, 64], [32, 64], [32]]),
}
KERNELS = [[3, 5, 7, 9], [3, 5, 7], [3, 5], [3]]
BLOCKS = {18: ('basic', [2, 2, 2, 2]), 34: ('basic', [3, 4, 6, 3]),
          50: ('bottleneck', [3, 4, 6, 3]), 101: ('bottleneck', [3, 4, 23, 3])}
SHARES = {1: [1], 2: [2, 2], 3: [4, 4, 2], 4: [4, 4, 4, 4]}  # width // share per level


class Pyramid(nn.Module):

    def __init__(self, cin, cout, kernels, groups, stride):
        super().__init__()
        for i, (k, g, share) in enumerate(zip(kernels, groups, SHARES[len(kernels)])):
            self.add_module(f'conv2_{i + 1}', nn.Conv2d(cin, cout // share, k, stride, k // 2,
                                                        groups=g, bias=False))

    def forward(self, x):
        return torch.cat([level(x) for level in self.children()], 1)


def pyramid(cin, cout, kernels, groups, stride):
    if len(kernels) == 1:
        return nn.Conv2d(cin, cout, kernels[0], stride, kernels[0] // 2, groups=groups[0],
                         bias=False)
    return Pyramid(cin, cout, kernels, groups, stride)


class Block(nn.Module):

    def __init__(self, kind, cin, planes, expansion, kernels, groups, stride, downsample):
        super().__init__()
        self.kind, self.downsample = kind, downsample
        if kind == 'bottleneck':
            self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2 = pyramid(planes, planes, kernels, groups, stride)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * expansion, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * expansion)
        else:
            self.conv1 = pyramid(cin, planes, kernels, groups, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 1, bias=False), nn.BatchNorm2d(planes)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        if self.kind == 'bottleneck':
            out = torch.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
        else:
            out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class OriginalNet(nn.Module):

    def __init__(self, family, depth, num_classes=1000):
        super().__init__()
        plan = PLANS[family]
        kind, counts = BLOCKS[depth]
        expansion = 1 if kind == 'basic' else plan['expansion']
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for s in range(4):
            planes = plan['base'] * 2**s
            cout = planes * expansion
            blocks = []
            for j in range(counts[s]):
                stride = 2 if j == 0 else 1
                downsample = None
                if j == 0 and cin != cout:
                    downsample = nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.Conv2d(
                        cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
                elif j == 0:
                    downsample = nn.MaxPool2d(3, 2, 1)
                blocks.append(Block(kind, cin, planes, expansion, KERNELS[s],
                                    plan['groups'][s], stride, downsample))
                cin = cout
            self.add_module(f'layer{s + 1}', nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def original(family, depth, num_classes=1000, seed=0):
    """An original network with random weights and BN statistics, in eval mode."""
    torch.manual_seed(seed)
    net = OriginalNet(family, depth, num_classes)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.num_batches_tracked.fill_(1000)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
    return net.eval()


def classifier(config):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', config))
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model).eval()


@pytest.mark.parametrize('family, depth, config', [
    ('PyConvResNet', 50, 'pyconvresnet/pyconvresnet50_8xb32_in1k.py'),
    ('PyConvHGResNet', 50, 'pyconvhgresnet/pyconvhgresnet50_8xb32_in1k.py'),
])
def test_converted_classifier_gives_the_original_logits(family, depth, config):
    net = original(family, depth)
    converted, arch = convert_original_classifier(net.state_dict())
    assert arch == dict(family=family, depth=depth, num_classes=1000)
    model = classifier(config)
    model.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, actual = net(x), model(x, mode='tensor')
    assert expected.abs().max() > 1e-2  # logits that say something
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


def test_converter_tool(tmp_path):
    net = original('PyConvResNet', 18, num_classes=10)
    # As the authors' training script saves it: wrapped, with DataParallel's prefix.
    src = tmp_path / 'checkpoint.pth.tar'
    torch.save(dict(epoch=90, arch='pyconvresnet',
                    state_dict={f'module.{k}': v for k, v in net.state_dict().items()}), src)
    dst = tmp_path / 'out' / 'pyconvresnet18.pth'
    result = run([sys.executable, os.path.join(TOOLS, 'convert', 'pyconv_to_mmpretrain.py'),
                  str(src), str(dst)])
    assert result.returncode == 0, result.stderr
    assert 'PyConvResNet-18' in result.stdout and '10 classes' in result.stdout

    checkpoint = torch.load(dst, weights_only=True)
    assert checkpoint['meta']['architecture'] == 'PyConvResNet-18'
    model = classifier('pyconvresnet/pyconvresnet18_8xb32_in1k.py')
    model.head.fc = nn.Linear(512, 10)
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), net(x), rtol=1e-4, atol=1e-4)


def test_converter_tool_refuses_and_writes_nothing(tmp_path, capsys):
    state = original('PyConvResNet', 18, num_classes=10).state_dict()
    state['layer2.0.conv1.conv2_2.weight'] = torch.zeros(1, 1, 1, 1)
    src, dst = tmp_path / 'bad.pth', tmp_path / 'out.pth'
    torch.save(state, src)
    assert load_tool('convert/pyconv_to_mmpretrain.py').main([str(src), str(dst)]) == 2
    assert not dst.exists()
    assert 'backbone.layer2.0.conv1.levels.1.weight: checkpoint (1, 1, 1, 1)' in \
        capsys.readouterr().err


def test_every_problem_is_named():
    state = original('PyConvResNet', 18, num_classes=10).state_dict()
    state['extra.weight'] = torch.zeros(3)
    del state['layer3.1.bn2.running_var']
    state['layer4.0.conv1.weight'] = torch.zeros(512, 256, 5, 5)
    with pytest.raises(ConversionError) as info:
        convert_original_classifier(state)
    message = str(info.value)
    assert 'PyConvResNet-18' in message
    assert 'extra.weight' in message
    assert 'backbone.layer3.1.bn2.running_var' in message
    assert 'backbone.layer4.0.conv1.levels.0.weight: checkpoint (512, 256, 5, 5), ' \
           'model (512, 256, 3, 3)' in message


def test_architecture_is_read_from_the_keys():
    for family, depth in (('PyConvResNet', 18), ('PyConvResNet', 101), ('PyConvHGResNet', 50)):
        with torch.device('meta'):
            state = OriginalNet(family, depth, 7).state_dict()
        assert infer_original_arch(state) == dict(family=family, depth=depth, num_classes=7)
    with pytest.raises(ConversionError, match='the checkpoint holds a PyConvResNet-18'):
        convert_original_classifier(original('PyConvResNet', 18, 10).state_dict(), depth=34)


def test_plain_resnet_is_not_taken_for_pyconv():
    import torchvision
    with pytest.raises(ConversionError, match='no pyramid levels'):
        infer_original_arch(torchvision.models.resnet50().state_dict())


def backbone_features_equal(backbone, net):
    x = torch.randn(2, 3, 64, 64)
    backbone.eval()
    with torch.no_grad():
        expected = net.features(x)
        # relative to the largest feature: the backbone may sum in another order (impl='auto')
        torch.testing.assert_close(backbone(x)[-1], expected, rtol=1e-4,
                                   atol=1e-4 * expected.abs().max())


def test_deprecated_pyconv_pretrained_warns_and_still_loads(tmp_path):
    from mmpyconv.models import PyConvResNet
    net = original('PyConvResNet', 18)
    path = tmp_path / 'pyconvresnet18.pth'
    torch.save(net.state_dict(), path)
    backbone = PyConvResNet(depth=18, init_cfg=dict(type='PyConvPretrained',
                                                    checkpoint=str(path)))
    with pytest.warns(FutureWarning, match="type='Pretrained'"):
        backbone.init_weights()
    backbone_features_equal(backbone, net)


def test_pre_hook_lets_mmengine_pretrained_read_an_original_file(tmp_path):
    from mmengine.model.weight_init import PretrainedInit

    from mmpyconv.models import PyConvResNet
    net = original('PyConvResNet', 18)
    path = tmp_path / 'pyconvresnet18.pth'
    torch.save(dict(state_dict={f'module.{k}': v for k, v in net.state_dict().items()}), path)
    backbone = PyConvResNet(depth=18)
    backbone.register_load_state_dict_pre_hook(original_layout_pre_hook)
    PretrainedInit(checkpoint=str(path))(backbone)
    backbone_features_equal(backbone, net)
    # The hook leaves mmpyconv's own layout alone: a round trip through state_dict works.
    again = PyConvResNet(depth=18)
    again.register_load_state_dict_pre_hook(original_layout_pre_hook)
    again.load_state_dict(backbone.state_dict(), strict=True)
    backbone_features_equal(again, net)


def test_plain_pretrained_init_cfg_reads_an_original_file(tmp_path):
    from mmengine.registry import MODELS
    net = original('PyConvResNet', 18)
    path = tmp_path / 'pyconvresnet18.pth'
    torch.save(net.state_dict(), path)
    backbone = MODELS.build(dict(type='PyConvResNet', depth=18,
                                 init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    backbone.init_weights()
    backbone_features_equal(backbone, net)
