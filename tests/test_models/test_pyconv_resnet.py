"""PyConvResNet / PyConvHGResNet: the paper's structure and the OpenMMLab backbone contract."""
import subprocess
import sys
from unittest import mock

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmpyconv.models import PyConvHGResNet, PyConvResNet
from mmpyconv.models.backbones import pyconv_blocks
from mmpyconv.ops import PyConv2d

# (class, depth, output channels of the four stages, middle width of stage 1)
VARIANTS = [
    (PyConvResNet, 18, (64, 128, 256, 512), 64),
    (PyConvResNet, 34, (64, 128, 256, 512), 64),
    (PyConvResNet, 50, (256, 512, 1024, 2048), 64),
    (PyConvResNet, 101, (256, 512, 1024, 2048), 64),
    (PyConvResNet, 152, (256, 512, 1024, 2048), 64),
    (PyConvHGResNet, 50, (256, 512, 1024, 2048), 128),
    (PyConvHGResNet, 101, (256, 512, 1024, 2048), 128),
    (PyConvHGResNet, 152, (256, 512, 1024, 2048), 128),
]
VARIANT_IDS = [f'{cls.__name__}-{depth}' for cls, depth, *_ in VARIANTS]

# The paper's stage plans (DESIGN.md).
PYCONV_KERNELS = [(3, 5, 7, 9), (3, 5, 7), (3, 5), (3, )]
PYCONV_GROUPS = [(1, 4, 8, 16), (1, 4, 8), (1, 4), (1, )]
HG_GROUPS = [(32, 32, 32, 32), (32, 64, 64), (32, 64), (32, )]

# Parameters of an ImageNet classifier (backbone, global pooling, 1000-way linear) of the
# original networks (github.com/iduta/pyconv).
ORIGINAL_PARAMS = {
    ('PyConvResNet', 18): 5_911_976,
    ('PyConvResNet', 34): 11_091_048,
    ('PyConvResNet', 50): 24_847_720,
    ('PyConvResNet', 101): 42_307_944,
    ('PyConvResNet', 152): 56_640_872,
    ('PyConvHGResNet', 50): 25_234_728,
    ('PyConvHGResNet', 101): 44_627_240,
    ('PyConvHGResNet', 152): 60_657_960,
}


def pyconv_of(block) -> PyConv2d:
    return block.conv1 if isinstance(block, pyconv_blocks.PyConvBasicBlock) else block.conv2


def all_pyconvs(model):
    return [m for m in model.modules() if isinstance(m, PyConv2d)]


@pytest.mark.parametrize('cls,depth,channels,_', VARIANTS, ids=VARIANT_IDS)
def test_contract_outputs_and_gradients(cls, depth, channels, _):
    torch.manual_seed(0)
    model = cls(depth=depth, out_indices=(0, 1, 2, 3))
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, 64, 64)
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == 4
    for i, (out, c, reduction) in enumerate(zip(outs, channels, (4, 8, 16, 32))):
        assert out.shape == (2, c, 64 // reduction, 64 // reduction), f'stage {i}'
    assert model.stage_channels == list(channels) and model.feat_dim == channels[-1]
    sum(o.float().pow(2).mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f'no gradient reached {missing[:5]}'
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('out_indices', [(0, ), (3, ), (1, 2), (0, 3)])
def test_out_indices_select_stages(out_indices):
    model = PyConvResNet(depth=18, out_indices=out_indices).eval()
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [(64, 128, 256, 512)[i] for i in out_indices]


@pytest.mark.parametrize('cls,depth,channels,mid', VARIANTS, ids=VARIANT_IDS)
def test_structure_matches_the_paper(cls, depth, channels, mid):
    model = cls(depth=depth)
    # 7x7/2 stem, no max-pool anywhere outside the shortcuts.
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert model.conv1.padding == (3, 3) and model.conv1.out_channels == 64
    stem_pools = [n for n, m in model.named_modules()
                  if isinstance(m, nn.MaxPool2d) and '.downsample.' not in n]
    assert stem_pools == []
    groups_plan = HG_GROUPS if cls is PyConvHGResNet else PYCONV_GROUPS
    blocks_per_stage = model.arch_settings[depth][1]
    in_channels = 64
    for i in range(4):
        stage = getattr(model, f'layer{i + 1}')
        assert len(stage) == blocks_per_stage[i]
        for j, block in enumerate(stage):
            pyconv = pyconv_of(block)
            assert [lv.kernel_size[0] for lv in pyconv.levels] == list(PYCONV_KERNELS[i])
            assert [lv.groups for lv in pyconv.levels] == list(groups_plan[i])
            assert {lv.stride for lv in pyconv.levels} == {(2, 2) if j == 0 else (1, 1)}
            assert block.out_channels == channels[i]
            if isinstance(block, pyconv_blocks.PyConvBottleneck):
                assert pyconv.in_channels == pyconv.out_channels == mid * 2**i
                assert block.conv1.kernel_size == block.conv3.kernel_size == (1, 1)
                assert block.conv1.stride == block.conv3.stride == (1, 1)
            else:  # basic block: PyConv then 1x1 conv, expansion 1
                assert pyconv.in_channels == (in_channels if j == 0 else channels[i])
                assert block.conv2.kernel_size == (1, 1)
            if j > 0:
                assert block.downsample is None
        first = stage[0]
        shortcut = list(first.downsample)
        assert isinstance(shortcut[0], nn.MaxPool2d)
        assert (shortcut[0].kernel_size, shortcut[0].stride, shortcut[0].padding) == (3, 2, 1)
        if in_channels != channels[i]:
            assert len(shortcut) == 3
            assert isinstance(shortcut[1], nn.Conv2d) and shortcut[1].kernel_size == (1, 1)
            assert shortcut[1].stride == (1, 1)
            assert isinstance(shortcut[2], _BatchNorm)
        else:  # PyConvResNet-18/34 stage 1: 64 -> 64, the max-pool alone
            assert len(shortcut) == 1
        in_channels = channels[i]


def test_stage_plan_overridable():
    model = PyConvResNet(
        depth=50, pyconv_kernels=[(3, 5), (3, 5), (3, ), (3, )],
        pyconv_groups=[(1, 4), (1, 4), (1, ), (1, )])
    assert [lv.kernel_size[0] for lv in model.layer1[0].conv2.levels] == [3, 5]
    assert [lv.groups for lv in model.layer2[2].conv2.levels] == [1, 4]
    assert model.eval()(torch.randn(1, 3, 32, 32))[0].shape == (1, 2048, 1, 1)


def test_pyconv_cfg_reaches_every_pyconv():
    model = PyConvResNet(depth=18, pyconv_cfg=dict(type='PyConv2d', bias=True))
    assert all(lv.bias is not None for p in all_pyconvs(model) for lv in p.levels)
    with pytest.raises(ValueError, match='pyconv_kernels'):
        PyConvResNet(depth=18, pyconv_cfg=dict(type='PyConv2d', kernel_size=(3, 5)))


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(depth=42), KeyError, 'valid depths'),
    (dict(depth=50, out_indices=(4, )), ValueError, 'out_indices'),
    (dict(depth=50, num_stages=5), ValueError, 'num_stages'),
    (dict(depth=50, strides=(2, 2, 2)), ValueError, 'one entry per stage'),
    (dict(depth=50, dilations=(1, 1)), ValueError, 'one entry per stage'),
    (dict(depth=50, frozen_stages=5), ValueError, 'frozen_stages'),
    (dict(depth=50, pyconv_kernels=[(3, ), (3, ), (3, )]), ValueError, 'pyconv_kernels'),
    (dict(depth=50, pyconv_groups=[(1, 4, 8, 16), (1, 4, 8)]), ValueError, 'pyconv_groups'),
    (dict(depth=50, pyconv_groups=[(1, 4, 8), (1, 4, 8), (1, 4), (1, )]), ValueError,
     'different lengths'),
    (dict(depth=50, pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth')),
     ValueError, 'not both'),
])
def test_invalid_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        PyConvResNet(**kwargs)


def test_hg_rejects_basic_depths():
    with pytest.raises(KeyError, match=r'\[50, 101, 152\]'):
        PyConvHGResNet(depth=18)


def test_norm_eval_keeps_running_stats():
    model = PyConvResNet(depth=18, norm_eval=True)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(not m.training for m in norms)
    before = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(model.bn1.running_mean, before)
    # Without norm_eval the statistics move.
    model = PyConvResNet(depth=18)
    model.train()
    before = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert not torch.equal(model.bn1.running_mean, before)


@pytest.mark.parametrize('frozen_stages', [0, 1, 3])
def test_frozen_stages(frozen_stages):
    model = PyConvResNet(depth=18, frozen_stages=frozen_stages)
    model.train()
    frozen = [model.conv1, model.bn1] + [getattr(model, f'layer{i}')
                                          for i in range(1, frozen_stages + 1)]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules() if isinstance(m, _BatchNorm))
    for i in range(frozen_stages + 1, 5):
        layer = getattr(model, f'layer{i}')
        assert all(p.requires_grad for p in layer.parameters())
        assert all(m.training for m in layer.modules() if isinstance(m, _BatchNorm))


def test_with_cp_checkpoints_every_block_and_matches():
    torch.manual_seed(0)
    plain = PyConvResNet(depth=18, out_indices=(0, 1, 2, 3))
    plain.init_weights()
    ckpt = PyConvResNet(depth=18, out_indices=(0, 1, 2, 3), with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    real_checkpoint = torch.utils.checkpoint.checkpoint
    with mock.patch.object(pyconv_blocks.cp, 'checkpoint',
                           side_effect=real_checkpoint) as spy:
        outs_cp = ckpt(x)
    assert spy.call_count == sum(ckpt.stage_blocks)
    outs = plain(x)
    for a, b in zip(outs, outs_cp):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in outs).backward()
    sum(o.sum() for o in outs_cp).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize('depth', [18, 50])
def test_zero_init_residual(depth):
    model = PyConvResNet(depth=depth, zero_init_residual=True)
    model.init_weights()
    blocks = [b for i in range(1, 5) for b in getattr(model, f'layer{i}')]
    for block in blocks:
        assert torch.count_nonzero(block.last_norm.weight) == 0
    # Each block starts as relu(shortcut(x)).
    model.eval()
    block = model.layer2[0]
    x = torch.randn(1, block.in_channels, 16, 16)
    torch.testing.assert_close(block(x), torch.relu(block.downsample(x)))
    default = PyConvResNet(depth=depth)
    default.init_weights()
    assert all(torch.all(b.last_norm.weight == 1)
               for i in range(1, 5) for b in getattr(default, f'layer{i}'))


def test_output_stride_8_with_dilation():
    model = PyConvResNet(depth=50, strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4),
                         out_indices=(0, 1, 2, 3))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (8, 8), (8, 8)]
    for i, dilation in enumerate((1, 1, 2, 4)):
        for block in getattr(model, f'layer{i + 1}'):
            for level in block.conv2.levels:
                k = level.kernel_size[0]
                assert level.dilation == (dilation, dilation)
                assert level.padding == (dilation * (k - 1) // 2, ) * 2
    # Dilated stages keep the shortcut max-pool, at stride 1 (as the original segmentation net).
    for i in (3, 4):
        pool = getattr(model, f'layer{i}')[0].downsample[0]
        assert isinstance(pool, nn.MaxPool2d) and pool.stride == 1
    hg = PyConvHGResNet(depth=50, strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4))
    assert hg(torch.randn(1, 3, 64, 64))[0].shape == (1, 2048, 8, 8)


def test_plain_stride_1_stage_has_no_pool():
    model = PyConvResNet(depth=50, strides=(2, 1, 2, 2))
    assert [type(m) for m in model.layer2[0].downsample] == [nn.Conv2d, nn.BatchNorm2d]
    assert model.eval()(torch.randn(1, 3, 32, 32))[0].shape == (1, 2048, 2, 2)


def test_pretrained_init_cfg_and_deprecated_string(tmp_path):
    torch.manual_seed(0)
    source = PyConvResNet(depth=18)
    source.init_weights()
    path = tmp_path / 'backbone.pth'
    torch.save(source.state_dict(), path)
    with pytest.warns(DeprecationWarning, match='pretrained'):
        model = PyConvResNet(depth=18, pretrained=str(path))
    assert model.init_cfg == dict(type='Pretrained', checkpoint=str(path))
    model.init_weights()
    for (name, a), b in zip(source.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def _image_classifier(cls_name: str, depth: int):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    channels = 512 if (cls_name, depth) in (('PyConvResNet', 18), ('PyConvResNet', 34)) else 2048
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(type=cls_name, depth=depth),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=1000, in_channels=channels)))


@pytest.mark.parametrize('key', sorted(ORIGINAL_PARAMS), ids=lambda k: f'{k[0]}-{k[1]}')
def test_parameter_counts_match_the_original_networks(key):
    model = _image_classifier(*key)
    assert sum(p.numel() for p in model.parameters()) == ORIGINAL_PARAMS[key]


def test_flops_at_224():
    from mmengine.analysis import FlopAnalyzer
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    def gflops(model):
        model.eval()
        with torch.no_grad():
            analyzer = FlopAnalyzer(model, (torch.randn(1, 3, 224, 224), ))
            return analyzer.unsupported_ops_warnings(False).total() / 1e9

    pyconv = gflops(_image_classifier('PyConvResNet', 50))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        resnet = gflops(MODELS.build(
            dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=50),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))))
    assert pyconv == pytest.approx(3.84, abs=0.005)
    assert resnet == pytest.approx(4.11, abs=0.005)


@pytest.mark.parametrize('scope,registry_module', [
    ('mmpretrain', 'mmpretrain.registry'),
    ('mmdet', 'mmdet.registry'),
    ('mmseg', 'mmseg.registry'),
    ('mmaction', 'mmaction.registry'),
])
def test_builds_under_every_toolbox_scope(scope, registry_module):
    import importlib

    from mmengine.registry import DefaultScope

    from mmpyconv.models.backbones.toolboxes import MMACTION_CLASSES
    registry = importlib.import_module(registry_module).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        for type_name, cls in (('PyConvResNet', PyConvResNet), ('PyConvHGResNet',
                                                                 PyConvHGResNet)):
            model = registry.build(dict(type=type_name, depth=50, out_indices=(2, 3)))
            # mmaction2's registry holds the same class returning one output as a tensor.
            expected = MMACTION_CLASSES[type_name] if scope == 'mmaction' else cls
            assert type(model) is expected and issubclass(expected, cls)
            assert model.out_indices == (2, 3)


def test_mmseg_encoder_decoder_injects_pretrained(tmp_path):
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    source = PyConvResNet(depth=18)
    source.init_weights()
    path = tmp_path / 'backbone.pth'
    torch.save(source.state_dict(), path)
    # As a config file gives it: mmseg sets `backbone.pretrained` on a ConfigDict.
    cfg = ConfigDict(
        type='EncoderDecoder',
        pretrained=str(path),
        backbone=dict(type='PyConvResNet', depth=18),
        decode_head=dict(type='FCNHead', in_channels=512, channels=16, num_convs=1,
                         num_classes=3))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(path))
    model.init_weights()
    torch.testing.assert_close(model.backbone.conv1.weight, source.conv1.weight)


def test_import_mmpyconv_imports_no_toolbox():
    code = ('import sys, mmpyconv; '
            'bad = [m for m in ("mmpretrain", "mmdet", "mmseg", "mmaction") if m in sys.modules]; '
            'assert not bad, bad; '
            'from mmengine.registry import MODELS; '
            'assert MODELS.get("PyConvResNet") is mmpyconv.PyConvResNet; '
            'assert MODELS.get("PyConv2d") is mmpyconv.PyConv2d')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_core_works_without_mmcv_compiled_ops():
    """mmcv-lite (mmcv without its compiled `_ext`) is enough for the operator and backbones."""
    code = '''
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("mmcv._ext", "mmcv.ops") or name.startswith("mmcv.ops."):
            raise ImportError(f"{name} blocked: simulating mmcv-lite")
sys.meta_path.insert(0, Block())
import torch, mmpyconv
from mmpyconv.models import PyConvResNet
out = PyConvResNet(depth=18).eval()(torch.rand(1, 3, 32, 32))
assert out[0].shape == (1, 512, 1, 1)
assert "mmcv._ext" not in sys.modules
'''
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_layer_wise_lr_decay_with_mmpretrain_constructor():
    """mmpretrain's LearningRateDecayOptimWrapperConstructor reads get_layer_depth: learning
    rates grow by the decay rate from the stem to the head, never backwards."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    with DefaultScope.overwrite_default_scope('mmpretrain'), torch.device('meta'):
        model = MODELS.build(dict(
            type='ImageClassifier', backbone=dict(type='PyConvResNet', depth=50),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=2048)))
    decay = 0.5
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='LearningRateDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=1.0, weight_decay=1e-4)),
            paramwise_cfg=dict(layer_decay_rate=decay)))
        groups = constructor(model).optimizer.param_groups
    lr = {g['param_name']: g['lr'] for g in groups}
    assert len(lr) == len(list(model.parameters()))
    ordered = [lr[name] for name, _ in model.named_parameters()]
    assert ordered == sorted(ordered), 'a later layer got a smaller learning rate'
    distinct = sorted(set(ordered))
    assert all(b == pytest.approx(a / decay) for a, b in zip(distinct, distinct[1:]))
    assert lr['head.fc.weight'] == 1.0
    firsts = [lr['backbone.conv1.weight']] + [
        lr[f'backbone.layer{i}.0.conv1.weight'] for i in range(1, 5)] + [lr['head.fc.weight']]
    assert firsts == sorted(set(firsts)), firsts  # stem < each stage < head
