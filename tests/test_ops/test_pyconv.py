"""PyConv2d: levels, padding, validation, conv-layer builder, cost helper."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer
from mmengine.analysis import FlopAnalyzer

from mmpyconv.ops import PyConv2d, PyConvPlan, default_split, format_cost, pyconv_cost


def per_level_conv(m: PyConv2d, x: torch.Tensor, dilation: int = 1, stride: int = 1):
    """The layer computed from its weights with F.conv2d, padding from the kernel formula."""
    outs = []
    for level in m.levels:
        k = level.weight.shape[-1]
        outs.append(
            F.conv2d(x, level.weight, level.bias, stride=stride, padding=dilation * (k - 1) // 2,
                     dilation=dilation, groups=level.groups))
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize('kernels,groups,expected', [
    ((3, 5, 7, 9), (1, 4, 8, 16), [16, 16, 16, 16]),
    ((3, 5, 7), (1, 4, 8), [16, 16, 32]),
    ((3, 5), (1, 4), [32, 32]),
    ((3, ), (1, ), [64]),
])
def test_paper_split_and_forward(kernels, groups, expected):
    torch.manual_seed(0)
    m = PyConv2d(64, 64, kernel_size=kernels, groups=groups)
    assert [lv.out_channels for lv in m.levels] == expected
    assert [lv.kernel_size[0] for lv in m.levels] == list(kernels)
    assert [lv.groups for lv in m.levels] == list(groups)
    x = torch.randn(2, 64, 11, 13)
    out = m(x)
    assert out.shape == (2, 64, 11, 13)
    torch.testing.assert_close(out, per_level_conv(m, x))


def test_level_order_in_output():
    """Channels of level i come right after those of level i-1."""
    m = PyConv2d(8, 12, kernel_size=(3, 5), groups=(1, 2), level_channels=(4, 8))
    with torch.no_grad():
        m.levels[0].weight.zero_()
        m.levels[1].weight.fill_(1.0)
    out = m(torch.ones(1, 8, 7, 7))
    assert out[:, :4].abs().sum() == 0
    assert (out[:, 4:, 3, 3] > 0).all()


def test_per_level_widths_and_bias():
    m = PyConv2d(16, [4, 4, 8], kernel_size=(3, 5, 7), groups=(1, 2, 4), bias=True)
    assert m.out_channels == 16
    assert all(lv.bias is not None and lv.bias.shape == (lv.out_channels, ) for lv in m.levels)
    x = torch.randn(1, 16, 9, 9)
    torch.testing.assert_close(m(x), per_level_conv(m, x))


def test_default_groups_follow_the_paper():
    assert [lv.groups for lv in PyConv2d(64, 64).levels] == [1, 4, 8, 16]
    assert [lv.groups for lv in PyConv2d(64, 64, kernel_size=(3, 5)).levels] == [1, 4]
    assert [lv.groups for lv in PyConv2d(64, 64, kernel_size=3).levels] == [1]


def test_int_groups_apply_to_every_level():
    m = PyConv2d(64, 64, kernel_size=(3, 5, 7, 9), groups=16)
    assert [lv.groups for lv in m.levels] == [16] * 4


@pytest.mark.parametrize('dilation', [1, 2, 3, 4])
@pytest.mark.parametrize('stride', [1, 2])
def test_every_level_padded_same_at_any_dilation(dilation, stride):
    m = PyConv2d(16, 16, kernel_size=(3, 5, 7, 9), groups=(1, 2, 4, 4), stride=stride,
                 dilation=dilation)
    for level in m.levels:
        k = level.kernel_size[0]
        assert level.padding == (dilation * (k - 1) // 2, ) * 2
        assert level.dilation == (dilation, dilation)
        assert level.stride == (stride, stride)
    x = torch.randn(1, 16, 15, 17)
    out = m(x)
    # 'same' output: ceil(size / stride) at every level, so concatenation lines up.
    assert out.shape[-2:] == ((15 + stride - 1) // stride, (17 + stride - 1) // stride)
    assert m.plan.output_size(15, 17) == tuple(out.shape[-2:])
    torch.testing.assert_close(out, per_level_conv(m, x, dilation=dilation, stride=stride))


def test_built_as_a_conv_layer():
    m = build_conv_layer(
        dict(type='PyConv2d', groups=(1, 4, 8)), 32, 64, kernel_size=(3, 5, 7), stride=2,
        bias=False)
    assert isinstance(m, PyConv2d)
    assert m(torch.randn(1, 32, 8, 8)).shape == (1, 64, 4, 4)
    # Code written for a plain conv (kernel_size=3, padding=1) builds a one-level PyConv.
    plain = build_conv_layer(dict(type='PyConv2d'), 8, 8, kernel_size=3, padding=1)
    assert len(plain.levels) == 1 and plain.levels[0].padding == (1, 1)


@pytest.mark.parametrize('kwargs,match', [
    (dict(kernel_size=(3, 5, 7), groups=(1, 4)), 'different lengths'),
    (dict(kernel_size=(3, 5), groups=(1, 4), level_channels=(16, 16, 32)), 'different lengths'),
    (dict(kernel_size=(3, 4)), 'positive odd'),
    (dict(kernel_size=(3, 0)), 'positive odd'),
    (dict(kernel_size=(3, -5)), 'positive odd'),
    (dict(kernel_size=(3, 5), groups=(1, 3)), 'divisible by its groups=3'),
    (dict(kernel_size=(3, 5), groups=(1, 0)), 'groups 0'),
    (dict(kernel_size=(3, 5), groups=(1, 4), level_channels=(16, 32)), 'add up to 48'),
    (dict(kernel_size=(3, 5), padding=1), 'padding=1 does not match'),
    (dict(kernel_size=(3, 5), padding=(1, 1)), 'does not match'),
    (dict(kernel_size=(3, 5), padding=(2, 1)), 'does not match'),
    (dict(kernel_size=(3, 5), stride=0), 'stride'),
    (dict(kernel_size=()), 'at least one level'),
])
def test_invalid_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyConv2d(64, 64, **kwargs)


def test_input_of_another_shape_is_a_clear_error():
    # Unbatched (C, H, W) would concatenate the levels along H: refused, whatever the impl.
    module = PyConv2d(8, 8, (3, 5), groups=(1, 4))
    for impl in ('reference', 'dense', 'depthwise'):
        module.impl = impl
        with pytest.raises(ValueError, match=r'\(N, 8, H, W\), got \(8, 6, 6\); add the batch'):
            module(torch.rand(8, 6, 6))
        with pytest.raises(ValueError, match=r'got \(1, 4, 6, 6\).*right in_channels'):
            module(torch.rand(1, 4, 6, 6))
    assert module(torch.rand(8, 6, 6)[None]).shape == (1, 8, 6, 6)


def test_width_not_divisible_by_default_split():
    with pytest.raises(ValueError, match='multiple of 4'):
        PyConv2d(64, 66, kernel_size=(3, 5, 7, 9))
    with pytest.raises(ValueError, match='in_channels=30'):
        PyConv2d(30, 64, kernel_size=(3, 5), groups=(1, 4))


def test_default_split_beyond_four_levels_is_equal():
    assert default_split(60, 5) == [12] * 5
    assert default_split(64, 3) == [16, 16, 32]


def test_inside_mmcv_conv_module():
    from mmcv.cnn import ConvModule
    # ConvModule passes kernel_size, stride, padding, dilation, groups, bias on to the conv.
    m = ConvModule(32, 64, kernel_size=(3, 5, 7), stride=2, padding=(1, 2, 3), groups=(1, 4, 8),
                   conv_cfg=dict(type='PyConv2d'), norm_cfg=dict(type='BN'))
    assert isinstance(m.conv, PyConv2d) and m.kernel_size == (3, 5, 7)
    assert m.groups == (1, 4, 8) and m.stride == (2, 2)
    assert m(torch.randn(2, 32, 8, 8)).shape == (2, 64, 4, 4)


def test_conv_module_initialises_every_level_as_a_plain_conv():
    """Kaiming normal (fan_out, ReLU), zero bias: what ConvModule gives a plain conv."""
    from mmcv.cnn import ConvModule
    torch.manual_seed(0)
    m = ConvModule(64, 128, (3, 5, 7, 9), padding='same', groups=(1, 4, 8, 16),
                   conv_cfg=dict(type='PyConv2d'), norm_cfg=None)
    plain = ConvModule(64, 128, 3, padding=1, norm_cfg=None)

    def std_over_kaiming(weight):
        fan_out = weight.shape[0] * weight[0, 0].numel()
        return weight.std().item() / (2 / fan_out)**0.5

    assert std_over_kaiming(plain.conv.weight) == pytest.approx(1, abs=0.05)
    for level in m.conv.levels:
        assert std_over_kaiming(level.weight) == pytest.approx(1, abs=0.1), level
        assert level.bias is not None and not level.bias.any()
    # init_weights() starts the levels over, as mmengine calls it on a model.
    with torch.no_grad():
        for level in m.conv.levels:
            level.weight.zero_()
    m.conv.init_weights()
    assert all(std_over_kaiming(lvl.weight) == pytest.approx(1, abs=0.1) for lvl in m.conv.levels)


def test_padding_same():
    from mmcv.cnn import ConvModule
    m = ConvModule(16, 16, (3, 5), padding='same', dilation=2, groups=(1, 4),
                   conv_cfg=dict(type='PyConv2d'))
    assert m(torch.randn(1, 16, 9, 11)).shape == (1, 16, 9, 11)
    with pytest.raises(ValueError, match="'same' is accepted at stride 1 only"):
        PyConv2d(16, 16, (3, 5), stride=2, padding='same')
    with pytest.raises(ValueError, match="padding='valid'.*by name is 'same'"):
        PyConv2d(16, 16, (3, 5), padding='valid')


def test_cost_matches_module_and_flop_counter():
    m = PyConv2d(64, 64, kernel_size=(3, 5, 7, 9), groups=(1, 4, 8, 16), stride=2)
    cost = pyconv_cost(m, (56, 56))
    assert cost['pyconv']['params'] == sum(p.numel() for p in m.parameters())
    counted = FlopAnalyzer(m, (torch.randn(1, 64, 56, 56), )).total()
    assert cost['pyconv']['flops'] == counted
    plain = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
    assert cost['conv']['params'] == plain.weight.numel()
    assert cost['conv']['flops'] == FlopAnalyzer(plain, (torch.randn(1, 64, 56, 56), )).total()
    # The paper's stage-1 pyramid costs less than the 3x3 conv it replaces.
    assert cost['pyconv']['flops'] < cost['conv']['flops']
    table = format_cost(cost)
    assert 'plain 3x3 conv' in table and f"{cost['pyconv']['params']:,}" in table


def test_cost_from_plan_counts_bias():
    plan = PyConvPlan.create(16, 16, (3, 5), (1, 2), None, 1, 1)
    with_bias = pyconv_cost(plan, (8, 8), bias=True)
    without = pyconv_cost(plan, (8, 8))
    assert with_bias['pyconv']['params'] - without['pyconv']['params'] == 16
