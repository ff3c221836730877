"""PyConvPlan: the one source of level arithmetic, in 2D and 3D, against torch's own convs."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer

from mmpyconv.ops import PyConv2d, PyConvPlan, default_groups
from mmpyconv.ops.impls import reference


def level_convs(plan, x):
    """Every level as torch computes it from the plan's kernel, padding, stride, dilation."""
    conv = {2: F.conv2d, 3: F.conv3d}[plan.ndim]
    outs = []
    for i, (g, c) in enumerate(zip(plan.groups, plan.level_channels)):
        weight = torch.randn(c, plan.in_channels // g, *plan.kernel_size(i))
        outs.append(conv(x, weight, None, plan.stride, plan.padding(i), plan.dilation, g))
    return outs


@pytest.mark.parametrize('stride,dilation', [(1, 1), (2, 1), (1, 2), ((1, 2), (2, 1))])
def test_2d_levels_line_up_and_sizes_are_torch_sizes(stride, dilation):
    plan = PyConvPlan.create(16, 32, (3, 5, 7, 9), (1, 2, 4, 8), stride=stride,
                             dilation=dilation)
    x = torch.randn(1, 16, 11, 14)
    shapes = {tuple(out.shape[2:]) for out in level_convs(plan, x)}
    assert shapes == {plan.output_size(11, 14)}


@pytest.mark.parametrize('temporal', [3, (1, 3, 3, 5)])
@pytest.mark.parametrize('stride,dilation', [(1, 1), ((1, 2, 2), 1), (2, (2, 1, 1))])
def test_3d_levels_line_up_and_sizes_are_torch_sizes(temporal, stride, dilation):
    plan = PyConvPlan.create(8, 32, (3, 5, 7, 9), (1, 2, 4, 8), stride=stride,
                             dilation=dilation, temporal_kernel_size=temporal)
    assert plan.ndim == 3
    x = torch.randn(1, 8, 6, 9, 10)
    outs = level_convs(plan, x)
    assert {tuple(out.shape[2:]) for out in outs} == {plan.output_size(6, 9, 10)}
    # The reference implementation computes 3D plans; one level is one conv3d.
    weights = [torch.randn(c, 8 // g, *plan.kernel_size(i))
               for i, (g, c) in enumerate(zip(plan.groups, plan.level_channels))]
    out = reference.compute(x, plan, weights)
    assert out.shape == (1, 32, *plan.output_size(6, 9, 10))
    torch.testing.assert_close(
        out[:, :8], F.conv3d(x, weights[0], None, plan.stride, plan.padding(0), plan.dilation))


def test_flops_and_params_are_what_the_counter_counts():
    for temporal in (None, 3):
        plan = PyConvPlan.create(16, 32, (3, 5, 7), (1, 4, 8), stride=2,
                                 temporal_kernel_size=temporal)
        size = (9, 10) if temporal is None else (4, 9, 10)
        weights = [torch.randn(c, 16 // g, *plan.kernel_size(i))
                   for i, (g, c) in enumerate(zip(plan.groups, plan.level_channels))]

        class Layer(torch.nn.Module):

            def forward(self, x):
                return reference.compute(x, plan, weights)

        counted = FlopAnalyzer(Layer(), (torch.randn(1, 16, *size), )).total()
        assert plan.flops(size) == counted
        assert sum(plan.level_params(i) for i in range(plan.num_levels)) == sum(
            w.numel() for w in weights)


def test_dense_ratio_counts_the_masked_zeros():
    plan = PyConvPlan.create(64, 64, (3, 5, 7, 9), (1, 4, 8, 16))
    layer = PyConv2d(64, 64, (3, 5, 7, 9), groups=(1, 4, 8, 16))
    from mmpyconv.ops.impls.dense import dense_weight
    dense = dense_weight(plan, [lvl.weight for lvl in layer.levels])
    own = sum(lvl.weight.numel() for lvl in layer.levels)
    assert plan.dense_flop_ratio() == pytest.approx(dense.numel() / own)


def test_one_groups_default_for_plan_and_layer():
    for n in (1, 2, 3, 4, 5):
        kernels = tuple(range(3, 3 + 2 * n, 2))
        width = 16 * n
        plan = PyConvPlan.create(width, width, kernels)
        assert plan.groups == default_groups(n)
        assert PyConv2d(width, width, kernels).plan.groups == plan.groups
    assert default_groups(4) == (1, 4, 8, 16) and default_groups(6) == (1, ) * 6


@pytest.mark.parametrize('kwargs,match', [
    (dict(temporal_kernel_size=(3, 3)), 'different lengths'),
    (dict(temporal_kernel_size=2), 'temporal kernel size 2 must be a positive odd int'),
    (dict(temporal_kernel_size=3, stride=(1, 2)), 'stride must be a positive int or 3'),
])
def test_3d_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyConvPlan.create(16, 16, (3, 5, 7), (1, 2, 4), **kwargs)


def test_input_check_names_the_layout():
    plan = PyConvPlan.create(8, 8, (3, 5), (1, 2), temporal_kernel_size=1)
    with pytest.raises(ValueError,
                       match=r'PyConv3d\(8, 8\).*\(N, 8, T, H, W\), got \(1, 8, 5, 5\)'):
        plan.check_input(torch.rand(1, 8, 5, 5))
    plan.check_input(torch.rand(1, 8, 2, 5, 5))
