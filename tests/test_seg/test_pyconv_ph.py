"""PyConvPH: structure, widths, forward/backward, configuration, errors."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from mmpyconv.models.decode_heads import PyConvPH
from mmpyconv.ops import PyConv2d

# The original PyConvSegNet head (in_channels 2048) without its classifier.
ORIGINAL_HEAD_PARAMS = 8_452_608


def make_head(**kwargs):
    cfg = dict(in_channels=2048, channels=256, num_classes=150)
    cfg.update(kwargs)
    return PyConvPH(**cfg)


def convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_parameter_count_matches_the_original_head():
    head = make_head()
    count = sum(p.numel() for n, p in head.named_parameters() if not n.startswith('conv_seg'))
    assert count == ORIGINAL_HEAD_PARAMS
    assert head.conv_seg.weight.shape == (150, 256, 1, 1)


def test_structure_is_the_papers():
    head = make_head()
    local, glob, merge = head.local_context, head.global_context, head.merge_context
    # local: 1x1 2048->512, PyConv 512->512, 1x1 512->512
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs(local)] == [
        (2048, 512, (1, 1)), (512, 128, (3, 3)), (512, 128, (5, 5)), (512, 128, (7, 7)),
        (512, 128, (9, 9)), (512, 512, (1, 1))]
    pyconv = local[1].conv
    assert isinstance(pyconv, PyConv2d)
    assert [lv.groups for lv in pyconv.levels] == [1, 4, 8, 16]
    assert [lv.padding for lv in pyconv.levels] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    # global: pool to 9x9, 1x1 2048->512, PyConv 512->512, 1x1 512->512
    assert isinstance(glob[0], nn.AdaptiveAvgPool2d) and glob[0].output_size == 9
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs(glob)] == [
        (2048, 512, (1, 1)), (512, 128, (3, 3)), (512, 128, (5, 5)), (512, 128, (7, 7)),
        (512, 128, (9, 9)), (512, 512, (1, 1))]
    # merge: 3x3 over the concatenation, to `channels`
    assert (merge.conv.in_channels, merge.conv.out_channels, merge.conv.kernel_size,
            merge.conv.padding) == (1024, 256, (3, 3), (1, 1))
    # every conv is followed by a norm and an activation, and has no bias (the norm has one)
    blocks = [*local, *glob[1:], merge]
    assert all(isinstance(b.bn, nn.BatchNorm2d) and isinstance(b.activate, nn.ReLU)
               for b in blocks)
    assert all(c.bias is None for c in convs(nn.ModuleList(blocks)))
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.1


@pytest.mark.parametrize('size', [(17, 17), (9, 12), (5, 5), (60, 60)])
def test_forward_shapes(size):
    head = make_head(in_channels=256, local_channels=64, global_channels=64, channels=32,
                     num_classes=7, in_index=3).eval()
    feats = [torch.rand(2, 8, 4, 4)] * 3 + [torch.rand(2, 256, *size)]
    with torch.no_grad():
        out = head(feats)
    assert out.shape == (2, 7, *size)


def test_global_branch_sees_the_whole_input():
    """A change in a corner reaches the centre, beyond the local branch's receptive field.

    The local branch (1x1, 9x9 PyConv, 1x1, then the 3x3 merge) sees 5 pixels around the centre
    (10, 10); the corner change reaches it through the 9x9 pooled map only.
    """
    torch.manual_seed(0)
    head = make_head(in_channels=256, local_channels=32, global_channels=64, channels=16,
                     num_classes=3, dropout_ratio=0).eval()
    x = torch.rand(1, 256, 20, 20)
    y = x.clone()
    y[..., :3, :3] += 1.0
    with torch.no_grad():
        a, b = head([x]), head([y])
    assert (a[..., 10, 10] - b[..., 10, 10]).abs().max() > 1e-6
    head.global_context[1].conv.weight.data.zero_()  # cut the global branch: no effect left
    with torch.no_grad():
        a, b = head([x]), head([y])
    torch.testing.assert_close(a[..., 10, 10], b[..., 10, 10], rtol=0, atol=0)


def test_backward_reaches_every_parameter():
    head = make_head(in_channels=256, local_channels=32, global_channels=64, channels=16,
                     num_classes=5)
    head([torch.rand(2, 256, 12, 12)]).sum().backward()
    missing = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_widths_kernels_norm_and_activation_configurable():
    head = make_head(
        in_channels=96, channels=24, local_reduction=2, local_channels=40, global_channels=36,
        bins=3, pyconv_kernels=(3, 5, 7), pyconv_groups=(1, 2, 4), merge_kernel=1,
        norm_cfg=dict(type='GN', num_groups=4), act_cfg=dict(type='GELU'))
    local_py, global_py = head.local_context[1], head.global_context[2]
    assert [lv.out_channels for lv in local_py.conv.levels] == [16, 16, 16]  # 48 split equally
    assert [lv.out_channels for lv in global_py.conv.levels] == [12, 12, 12]
    assert [lv.kernel_size[0] for lv in global_py.conv.levels] == [3, 5, 7]
    assert [lv.groups for lv in global_py.conv.levels] == [1, 2, 4]
    assert head.local_context[2].conv.out_channels == 40
    assert head.global_context[0].output_size == 3
    assert head.merge_context.conv.in_channels == 76
    assert head.merge_context.conv.kernel_size == (1, 1)
    assert isinstance(local_py.gn, nn.GroupNorm) and isinstance(local_py.activate, nn.GELU)
    out = head([torch.rand(1, 96, 7, 7)])
    assert out.shape == (1, 150, 7, 7)


def test_pyconvs_are_mmcv_conv_modules():
    """The head's PyConvs are plain ConvModules holding a PyConv2d (padding 'same')."""
    from mmcv.cnn import ConvModule
    head = make_head(norm_cfg=None)
    for pyconv in (head.local_context[1], head.global_context[2]):
        assert isinstance(pyconv, ConvModule) and isinstance(pyconv.conv, PyConv2d)
        assert pyconv.padding == 'same'
        # Without a norm the conv gets biases, as ConvModule(bias='auto') gives a plain conv.
        assert pyconv.norm_name is None and all(lv.bias is not None for lv in pyconv.conv.levels)


def test_builds_from_the_mmseg_registry():
    from mmseg.registry import MODELS
    head = MODELS.build(dict(type='PyConvPH', in_channels=512, channels=64, num_classes=4,
                             norm_cfg=dict(type='SyncBN', requires_grad=True)))
    assert isinstance(head, PyConvPH)
    assert type(head.merge_context.bn).__name__ == 'SyncBatchNorm'


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(in_channels=[1024, 2048], in_index=[2, 3], input_transform='multiple_select'),
     TypeError, 'reads one feature map'),
    (dict(local_reduction=3), ValueError, 'local_reduction=3 must be a positive divisor'),
    (dict(global_channels=510), ValueError, 'equally over their 4 levels.*global_channels = 510'),
    (dict(pyconv_groups=(1, 4, 8, 24)), ValueError, 'divisible by its groups=24'),
    (dict(bins=0), ValueError, 'bins must be a positive int'),
    (dict(merge_kernel=2), ValueError, 'merge_kernel must be a positive odd int'),
])
def test_bad_arguments_say_what_to_change(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_head(**kwargs)


def test_import_mmpyconv_does_not_import_mmseg():
    code = ('import sys, mmpyconv; '
            'bad = [m for m in ("mmseg", "mmpyconv.models.decode_heads", '
            '"mmpyconv.datasets.seg_transforms") if m in sys.modules]; '
            'assert not bad, bad')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
