"""tools/convert/pyconvsegnet_to_mmseg.py against an independent PyConvSegNet.

``RefPyConvSegNet`` below is written from the description of the authors' network (module
names, widths, the output-stride-8 surgery on their backbone, the head), not from mmpyconv: it
produces state dicts in the authors' layout and the logits the converted mmseg model must give.
"""
import importlib.util
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpyconv.convert import ConversionError, segnet

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'convert', 'pyconvsegnet_to_mmseg.py')
CONFIGS = osp.join(REPO, 'configs', 'pyconvseg')
PYTHON = sys.executable


def _load_tool():
    spec = importlib.util.spec_from_file_location('pyconvsegnet_to_mmseg', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()  # the command line; the conversion itself is mmpyconv.convert.segnet

# ----------------------------------------------------------------- the reference network

PLANS = {  # family -> (base width, expansion, kernels per stage, groups per stage)
    'pyconvresnet': (64, 4, [(3, 5, 7, 9), (3, 5, 7), (3, 5), (3, )],
                     [(1, 4, 8, 16), (1, 4, 8), (1, 4), (1, )]),
    'pyconvhgresnet': (128, 2, [(3, 5, 7, 9), (3, 5, 7), (3, 5), (3, )],
                       [(32, 32, 32, 32), (32, 64, 64), (32, 64), (32, )]),
}
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# Width of each pyramid level as a fraction of the layer: the paper's split.
SPLIT = {1: (1, ), 2: (2, 2), 3: (4, 4, 2), 4: (4, 4, 4, 4)}


class RefPyConv(nn.Module):
    """Pyramid levels as attributes conv2_1, conv2_2, ... padded by k // 2."""

    def __init__(self, cin, cout, kernels, groups, stride=1, split=None):
        super().__init__()
        widths = [cout // d for d in (split or SPLIT[len(kernels)])]
        self.n = len(kernels)
        for i, (k, g, c) in enumerate(zip(kernels, groups, widths)):
            setattr(self, f'conv2_{i + 1}',
                    nn.Conv2d(cin, c, k, stride=stride, padding=k // 2, groups=g, bias=False))

    def forward(self, x):
        return torch.cat([getattr(self, f'conv2_{i + 1}')(x) for i in range(self.n)], 1)


class RefBottleneck(nn.Module):

    def __init__(self, cin, planes, expansion, stride, kernels, groups, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        if len(kernels) == 1:
            self.conv2 = nn.Conv2d(planes, planes, kernels[0], stride=stride,
                                   padding=kernels[0] // 2, groups=groups[0], bias=False)
        else:
            self.conv2 = RefPyConv(planes, planes, kernels, groups, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def ref_pyconv_backbone(family, depth):
    """(layer0, layer1..layer4) of a PyConv(HG)ResNet, made output-stride 8 afterwards as the
    authors do: dilate the PyConvs of layer3 (2) and layer4 (4), un-stride their shortcuts."""
    base, expansion, kernels, groups = PLANS[family]
    layer0 = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                           nn.ReLU(inplace=True))
    layers, cin = [], 64
    for s, n in enumerate(BLOCKS[depth]):
        planes = base * 2**s
        cout = planes * expansion
        blocks = []
        for j in range(n):
            down = nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.Conv2d(cin, cout, 1, bias=False),
                                 nn.BatchNorm2d(cout)) if j == 0 else None
            blocks.append(RefBottleneck(cin, planes, expansion, 2 if j == 0 else 1,
                                        kernels[s], groups[s], down))
            cin = cout
        layers.append(nn.Sequential(*blocks))
    for name, m in layers[2].named_modules():
        if name.endswith('conv2_1'):
            m.dilation, m.padding, m.stride = (2, 2), (2, 2), (1, 1)
        elif name.endswith('conv2_2'):
            m.dilation, m.padding, m.stride = (2, 2), (4, 4), (1, 1)
        elif name.endswith('downsample.0'):
            m.stride = (1, 1)
    for name, m in layers[3].named_modules():
        if name.endswith('conv2'):
            m.dilation, m.padding, m.stride = (4, 4), (4, 4), (1, 1)
        elif name.endswith('downsample.0'):
            m.stride = (1, 1)
    return [layer0] + layers


def ref_resnet_backbone(depth):
    """torchvision's ResNet with the authors' output-stride-8 surgery."""
    import torchvision
    net = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    for stage, dilation in ((net.layer3, 2), (net.layer4, 4)):
        for name, m in stage.named_modules():
            if name.endswith('conv2'):
                m.dilation, m.padding, m.stride = (dilation, ) * 2, (dilation, ) * 2, (1, 1)
            elif name.endswith('downsample.0'):
                m.stride = (1, 1)
    layer0 = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [layer0, net.layer1, net.layer2, net.layer3, net.layer4]


def _cbr(cin, cout, k=1):
    return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class _Holder(nn.Module):

    def __init__(self, **children):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)


class RefPyConvSegNet(nn.Module):

    def __init__(self, family, depth, classes, cin=2048):
        super().__init__()
        layers = ref_resnet_backbone(depth) if family == 'resnet' else ref_pyconv_backbone(
            family, depth)
        for i, layer in enumerate(layers):
            self.add_module(f'layer{i}', layer)
        mid = cin // 4
        head_pyconv = dict(kernels=(3, 5, 7, 9), groups=(1, 4, 8, 16), split=(4, 4, 4, 4))
        local = nn.Sequential(*_cbr(cin, mid), RefPyConv(mid, mid, **head_pyconv),
                              nn.BatchNorm2d(mid), nn.ReLU(inplace=True), *_cbr(mid, 512))
        glob = nn.Sequential(nn.AdaptiveAvgPool2d(9), *_cbr(cin, 512),
                             RefPyConv(512, 512, **head_pyconv), nn.BatchNorm2d(512),
                             nn.ReLU(inplace=True), *_cbr(512, 512))
        self.pyconvhead = _Holder(
            local_context=_Holder(layers=local), global_context=_Holder(features=glob),
            merge_context=_Holder(features=nn.Sequential(*_cbr(1024, 256, 3))))
        self.cls = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(256, classes, 1))
        self.aux = nn.Sequential(*_cbr(1024, 256, 3), nn.Dropout2d(0.1),
                                 nn.Conv2d(256, classes, 1))

    def forward(self, x):
        """(logits, auxiliary logits), both upsampled 8x with align_corners=True."""
        h, w = x.shape[2:]
        assert (h - 1) % 8 == 0 and (w - 1) % 8 == 0
        x = self.layer2(self.layer1(self.layer0(x)))
        stage3 = self.layer3(x)
        x = self.layer4(stage3)
        head = self.pyconvhead
        local = head.local_context.layers(x)
        glob = F.interpolate(head.global_context.features(x), x.shape[2:], mode='bilinear',
                             align_corners=True)
        merged = head.merge_context.features(torch.cat([local, glob], 1))
        up = dict(size=(h, w), mode='bilinear', align_corners=True)
        return F.interpolate(self.cls(merged), **up), F.interpolate(self.aux(stage3), **up)


def randomize(net: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics, so that every tensor matters to the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in)**0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1, ), generator=g)))
    return net.eval()


def save_original(net: nn.Module, path: str) -> None:
    """As the authors' training script saves: DataParallel names, wrapped with the epoch."""
    state = OrderedDict(('module.' + k, v) for k, v in net.state_dict().items())
    torch.save({'epoch': 100, 'state_dict': state}, path)


def build_mmseg(config: str, **overrides):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    cfg.merge_from_dict(overrides)
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def mmseg_logits(model, x):
    """(logits, auxiliary logits) of an EncoderDecoder at the input size, in one pass.

    The logits come from ``encode_decode`` (mmseg's inference path); the auxiliary head, used
    only in training there, reads the backbone features captured on the way.
    """
    from mmseg.models.utils import resize
    feats = []
    hook = model.backbone.register_forward_hook(lambda m, i, out: feats.append(out))
    try:
        logits = model.encode_decode(x, [dict(img_shape=tuple(x.shape[2:]))] * len(x))
    finally:
        hook.remove()
    aux = resize(model.auxiliary_head.forward(feats[0]), size=x.shape[2:], mode='bilinear',
                 align_corners=True)
    return logits, aux


# ----------------------------------------------------------------- tests


@pytest.fixture(scope='module')
def pyconv50(tmp_path_factory):
    """A random PyConvSegNet (PyConvResNet-50) and its checkpoint in the authors' layout."""
    ref = randomize(RefPyConvSegNet('pyconvresnet', 50, classes=150), seed=1)
    path = str(tmp_path_factory.mktemp('original') / 'pyconvsegnet50.pth')
    save_original(ref, path)
    return ref, path


@pytest.fixture(scope='module')
def pyconv50_state(pyconv50):
    return pyconv50[0].state_dict()


@pytest.fixture(scope='module')
def pyconv50_targets():
    model, _ = segnet.build_target(osp.join(CONFIGS, metafile_config('PyConvResNet-50')), 150)
    return OrderedDict((k, v.shape) for k, v in model.state_dict().items())


def metafile_config(backbone):
    """The file name of the PyConvSegNet config the metafile lists for a backbone."""
    import yaml
    with open(osp.join(CONFIGS, 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    (config, ) = [m['Config'] for m in models if m['Metadata']['Backbone'] == backbone
                  and m['Metadata']['Decode Head'] == 'PyConvPH']
    return osp.basename(config)


@pytest.mark.parametrize('family,backbone', [
    ('pyconvresnet', 'PyConvResNet-50'),
    ('pyconvhgresnet', 'PyConvHGResNet-50'),
    ('resnet', 'ResNet-50'),
])
def test_converted_model_gives_the_original_logits(request, tmp_path, family, backbone):
    from mmengine.runner import load_checkpoint
    if family == 'pyconvresnet':
        ref, src = request.getfixturevalue('pyconv50')
    else:
        ref = randomize(RefPyConvSegNet(family, 50, classes=150), seed=1)
        src = str(tmp_path / 'original.pth')
        save_original(ref, src)
    dst = str(tmp_path / 'mmseg.pth')

    info = segnet.convert_segnet_file(src, dst)  # the config is inferred from the checkpoint
    config = metafile_config(backbone)
    assert osp.basename(info['config']) == config
    assert (info['family'].lower(), info['depth'], info['num_classes']) == (family, 50, 150)

    model = build_mmseg(osp.join(CONFIGS, config)).eval()
    checkpoint = load_checkpoint(model, dst, map_location='cpu', strict=True)
    assert len(checkpoint['state_dict']) == len(model.state_dict())
    assert checkpoint['meta']['dataset_meta']['classes'][0] == 'wall'  # ADE20K's

    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        expected, expected_aux = ref(x)
        logits, aux = mmseg_logits(model, x)
    assert logits.shape == expected.shape == (1, 150, 65, 65)
    assert aux.shape == expected_aux.shape
    for ours, theirs in ((logits, expected), (aux, expected_aux)):
        scale = theirs.abs().max()
        assert scale > 1e-2 and theirs.std() > 1e-3 * scale  # not a degenerate output
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * scale)


def test_cli_converts_and_reports(pyconv50, tmp_path):
    ref, src = pyconv50
    dst = str(tmp_path / 'mmseg.pth')
    result = subprocess.run([PYTHON, TOOL, src, dst], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert 'PyConvResNet-50, 150 classes' in result.stdout
    converted = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    original = ref.state_dict()
    # Spot checks of the mapping, tensor by tensor.
    pairs = {
        'layer0.0.weight': 'backbone.conv1.weight',
        'layer0.1.running_var': 'backbone.bn1.running_var',
        'layer1.0.conv2.conv2_4.weight': 'backbone.layer1.0.conv2.levels.3.weight',
        'layer4.2.conv2.weight': 'backbone.layer4.2.conv2.levels.0.weight',
        'layer3.0.downsample.1.weight': 'backbone.layer3.0.downsample.1.weight',
        'pyconvhead.local_context.layers.3.conv2_2.weight':
        'decode_head.local_context.1.conv.levels.1.weight',
        'pyconvhead.global_context.features.8.running_mean':
        'decode_head.global_context.3.bn.running_mean',
        'pyconvhead.merge_context.features.0.weight': 'decode_head.merge_context.conv.weight',
        'cls.1.bias': 'decode_head.conv_seg.bias',
        'aux.0.weight': 'auxiliary_head.convs.0.conv.weight',
        'aux.4.weight': 'auxiliary_head.conv_seg.weight',
    }
    for old, new in pairs.items():
        assert torch.equal(converted[new], original[old]), (old, new)
    assert len(converted) == len(original)


def test_every_key_is_accounted_for(pyconv50_state, pyconv50_targets):
    converted = segnet.convert_segnet(pyconv50_state, pyconv50_targets)
    assert list(converted) == list(pyconv50_targets)

    extra = OrderedDict(pyconv50_state, **{'pyconvhead.extra.weight': torch.zeros(1)})
    with pytest.raises(ConversionError,
                       match=r'1 checkpoint tensors the model does not have.*pyconvhead\.extra'):
        segnet.convert_segnet(extra, pyconv50_targets)

    missing = OrderedDict(pyconv50_state)
    del missing['pyconvhead.global_context.features.4.conv2_3.weight']
    with pytest.raises(ConversionError,
                       match=r'1 model tensors missing.*global_context\.2\.conv\.levels\.2'):
        segnet.convert_segnet(missing, pyconv50_targets)

    wrong = OrderedDict(pyconv50_state)
    wrong['aux.0.weight'] = torch.zeros(256, 1024, 1, 1)
    with pytest.raises(ConversionError,
                       match=r'another shape: auxiliary_head\.convs\.0\.conv\.weight: checkpoint '
                       r'\(256, 1024, 1, 1\), model \(256, 1024, 3, 3\)'):
        segnet.convert_segnet(wrong, pyconv50_targets)


def test_missing_batchnorm_counters_are_filled(pyconv50_state, pyconv50_targets):
    """apex's SyncBN, which the authors trained with, keeps no num_batches_tracked."""
    state = OrderedDict((k, v) for k, v in pyconv50_state.items()
                        if not k.endswith('num_batches_tracked'))
    converted = segnet.convert_segnet(state, pyconv50_targets)
    assert int(converted['decode_head.merge_context.bn.num_batches_tracked']) == 0
    assert torch.equal(converted['backbone.bn1.weight'], pyconv50_state['layer0.1.weight'])


def test_wrong_class_count_is_a_clear_error(pyconv50_state, tmp_path, capsys):
    state = OrderedDict(pyconv50_state)
    for key in ('cls.1', 'aux.4'):
        state[f'{key}.weight'] = state[f'{key}.weight'][:19]
        state[f'{key}.bias'] = state[f'{key}.bias'][:19]
    src, dst = tmp_path / 'original19.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': state}, src)
    assert tool.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'checkpoint classifies 19 classes (cls.1.weight) but' in err
    assert f"{metafile_config('PyConvResNet-50')} has num_classes=150" in err
    assert not dst.exists()


def test_not_a_segmentation_checkpoint(tmp_path, capsys):
    src = str(tmp_path / 'imagenet.pth')
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(10, 2048)},
               src)
    assert tool.main([src, str(tmp_path / 'out.pth')]) == 2
    assert 'not a PyConvSegNet checkpoint' in capsys.readouterr().err
