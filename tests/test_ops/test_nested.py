"""The nested-group form: its merge rule, its cost arithmetic, its weight and its convs.

Its values and gradients against the reference, for every stage plan of both families, are in
test_pyconv_impls.py beside the other implementations; this file checks what is its own.
"""
import pytest
import torch
import torch.nn.functional as F

from mmpyconv.models import PyConvHGResNet, PyConvResNet
from mmpyconv.ops import PyConv2d, PyConvPlan
from mmpyconv.ops.impls import nested, reference
from mmpyconv.ops.impls.nested import (
    NestedConv,
    nested_convs,
    nested_flop_ratio,
    nested_params,
    nested_weight,
)


def _plan(kernels, groups, width=64, **kwargs):
    return PyConvPlan.create(width, width, kernels, groups, **kwargs)


def _own_macs(width, kernels, groups, level_channels):
    return sum(c * (width // g) * k * k for k, g, c in zip(kernels, groups, level_channels))


def test_pyconvresnet_stage1_is_two_convs_at_2_6x():
    """The paper's stage 1: 3x3 dense, and 5x5/4, 7x7/8, 9x9/16 as one 9x9 conv at 4 groups."""
    plan = _plan((3, 5, 7, 9), (1, 4, 8, 16))
    assert nested_convs(plan) == (NestedConv((0, ), 1, (3, 3)), NestedConv((1, 2, 3), 4, (9, 9)))
    own = _own_macs(64, (3, 5, 7, 9), (1, 4, 8, 16), (16, ) * 4)
    assert own == 16 * 64 * 9 + 16 * 16 * 25 + 16 * 8 * 49 + 16 * 4 * 81 == 27072
    merged = 16 * 64 * 9 + 48 * 16 * 81  # 48 outputs, 64 / 4 inputs per group, 9x9
    assert nested_params(plan) == merged
    assert nested_flop_ratio(plan) == pytest.approx(merged / own)
    assert round(nested_flop_ratio(plan), 1) == 2.6 and round(plan.dense_flop_ratio(), 1) == 12.3
    # the ratio does not depend on the width
    assert nested_flop_ratio(_plan((3, 5, 7, 9), (1, 4, 8, 16), 256)) == pytest.approx(
        merged / own)


def test_stage_plans_of_both_families():
    """Every stage plan: which convs, and their cost against the dense form's."""
    expected = {
        # PyConvResNet: the dense level alone, the grouped ones at 4 groups
        ((3, 5, 7), (1, 4, 8)): ([((0, ), 1, 3), ((1, 2), 4, 7)], 1.66),
        ((3, 5), (1, 4)): ([((0, ), 1, 3), ((1, ), 4, 5)], 1.0),
        ((3, ), (1, )): ([((0, ), 1, 3)], 1.0),
        # PyConvHGResNet: one conv at 32 groups
        ((3, 5, 7, 9), (32, 32, 32, 32)): ([((0, 1, 2, 3), 32, 9)], 1.98),
        ((3, 5, 7), (32, 64, 64)): ([((0, 1, 2), 32, 7)], 2.78),
        ((3, 5), (32, 64)): ([((0, 1), 32, 5)], 2.33),
        ((3, ), (32, )): ([((0, ), 32, 3)], 1.0),
    }
    families = [(PyConvResNet, 256), (PyConvHGResNet, 512)]
    seen = set()
    for family, width in families:
        for kernels, groups in zip(family.default_pyconv_kernels, family.default_pyconv_groups):
            plan = _plan(kernels, groups, width)
            seen.add((kernels, groups))
            if (kernels, groups) == ((3, 5, 7, 9), (1, 4, 8, 16)):
                continue  # test_pyconvresnet_stage1_is_two_convs_at_2_6x
            convs, ratio = expected[(kernels, groups)]
            assert nested_convs(plan) == tuple(
                NestedConv(levels, g, (k, k)) for levels, g, k in convs), (kernels, groups)
            assert nested_flop_ratio(plan) == pytest.approx(ratio, abs=0.005)
            assert nested_flop_ratio(plan) <= plan.dense_flop_ratio()
    assert len(seen) == 8


def test_merge_rule_needs_groups_that_divide_one_another():
    """A level joins the first set of grouped levels whose counts all divide, or are divisible
    by, its own: the set's smallest count then divides every count in it."""
    plan = _plan((3, 5, 7, 9), (2, 3, 4, 6), 48)
    assert nested_convs(plan) == (NestedConv((0, 2), 2, (7, 7)), NestedConv((1, 3), 3, (9, 9)))
    # 6 divides neither 4 nor 8 (nor they 6): 4 and 8 merge at 4, 6 stays alone
    plan = _plan((3, 5, 7), (4, 6, 8), 48)
    assert nested_convs(plan) == (NestedConv((0, 2), 4, (7, 7)), NestedConv((1, ), 6, (5, 5)))
    # dense levels stay convs of their own, even beside each other
    plan = _plan((3, 5, 7), (1, 1, 4), 16)
    assert [c.levels for c in nested_convs(plan)] == [(0, ), (1, ), (2, )]
    # 3D: the largest kernel per axis, which may come from different levels
    plan = _plan((3, 5), (2, 4), 16, temporal_kernel_size=(3, 1))
    assert nested_convs(plan) == (NestedConv((0, 1), 2, (3, 5, 5)), )


def test_nested_weight_is_block_diagonal_inside_each_group():
    """Zeros outside each level's centred window and its sub-group; rows group-major."""
    torch.manual_seed(0)
    plan = PyConvPlan.create(8, [4, 8], (3, 5), (2, 4))
    (conv, ) = nested_convs(plan)
    assert conv == NestedConv((0, 1), 2, (5, 5))
    w0, w1 = torch.randn(4, 4, 3, 3), torch.randn(8, 2, 5, 5)
    weight = nested_weight(plan, conv, [w0, w1])
    assert weight.shape == (12, 4, 5, 5)  # 2 groups x (2 + 4) outputs, 4 inputs per group
    for j in range(2):
        rows = weight[6 * j:6 * j + 6]
        level0, level1 = rows[:2], rows[2:]  # group j: level 0's chunk j, then level 1's
        assert torch.equal(level0[:, :, 1:4, 1:4], w0[2 * j:2 * j + 2])
        assert not level0[:, :, [0, 4]].any() and not level0[:, :, :, [0, 4]].any()
        for s in range(2):  # level 1's sub-group s of group j: its level group 2j + s
            block = level1[2 * s:2 * s + 2]
            group = 2 * j + s
            assert torch.equal(block[:, 2 * s:2 * s + 2], w1[2 * group:2 * group + 2])
            assert not block[:, 2 - 2 * s:4 - 2 * s].any()


def test_runs_one_conv_per_set(monkeypatch):
    calls = []
    conv2d = F.conv2d

    def spy(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        calls.append((tuple(weight.shape), padding, groups))
        return conv2d(x, weight, bias, stride, padding, dilation, groups)

    monkeypatch.setattr(nested.F, 'conv2d', spy)
    monkeypatch.setitem(nested._CONV, 2, spy)
    module = PyConv2d(64, 64, (3, 5, 7, 9), groups=(1, 4, 8, 16), dilation=2, impl='nested')
    with torch.no_grad():
        module(torch.rand(1, 64, 12, 12))
    assert calls == [((16, 64, 3, 3), (2, 2), 1), ((48, 16, 9, 9), (8, 8), 4)]


def test_gradients_stay_on_the_level_weights():
    """The level weights get the reference's gradients (the structural zeros are constants), and
    an output reads only its own level group's inputs."""
    torch.manual_seed(0)
    plan = _plan((3, 5, 7), (2, 4, 8), 16)
    weights = [torch.randn(c, 16 // g, k, k, requires_grad=True)
               for k, g, c in zip(plan.kernels, plan.groups, plan.level_channels)]
    x = torch.randn(2, 16, 7, 7)
    grad = torch.randn(2, 16, 7, 7)
    out = nested.compute(x, plan, weights)
    got = torch.autograd.grad(out, weights, grad)
    want = torch.autograd.grad(reference.compute(x, plan, weights), weights, grad)
    for a, b in zip(got, want):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    # the 8-group level (channels 8-15, one per group) inside the conv at 2 groups: its first
    # output reads input channels 0-1 only, not the rest of its group of the merged conv
    assert plan.level_channels == (4, 4, 8)
    x.requires_grad_()
    out = nested.compute(x, plan, weights)
    (dx, ) = torch.autograd.grad(out[:, 8].sum(), x)
    assert dx[:, :2].abs().sum() > 0 and not dx[:, 2:].any()


@pytest.mark.parametrize('channels_last', [False, True])
def test_3d_matches_reference(channels_last):
    torch.manual_seed(0)
    plan = PyConvPlan.create(16, 32, (3, 5, 7), (1, 4, 8), stride=(1, 2, 2), dilation=(2, 1, 1),
                             temporal_kernel_size=(3, 1, 3))
    weights = [torch.randn(c, 16 // g, t, k, k, requires_grad=True) for t, k, g, c in zip(
        plan.temporal_kernels, plan.kernels, plan.groups, plan.level_channels)]
    biases = [torch.randn(c, requires_grad=True) for c in plan.level_channels]
    x = torch.randn(2, 16, 5, 9, 8)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    assert nested.unavailable(x, plan) is None
    results = []
    for impl in (nested, reference):
        out = impl.compute(x, plan, weights, biases)
        grads = torch.autograd.grad(out, [x, *weights, *biases], torch.ones_like(out))
        results.append((out, grads))
    (out, grads), (ref, ref_grads) = results
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-4)


def test_single_level_is_the_plain_conv():
    plan = _plan((5, ), (4, ), 16)
    w = torch.randn(16, 4, 5, 5)
    x = torch.randn(1, 16, 6, 6)
    assert torch.equal(nested.compute(x, plan, [w]), F.conv2d(x, w, None, 1, 2, 1, 4))


def test_pyconv3d_layer_runs_nested():
    from mmpyconv.ops import PyConv3d
    torch.manual_seed(0)
    m = PyConv3d(16, 32, (3, 5, 7), temporal_kernel_size=(1, 3, 3), stride=(1, 2, 2))
    x = torch.randn(1, 16, 4, 9, 9)
    with torch.no_grad():
        m.impl = 'reference'
        expected = m(x)
        m.impl = 'nested'
        torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)
