"""PyConv3d: the video layer, checked against torch's conv3d, its 2D counterpart and itself."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer
from mmengine.analysis import FlopAnalyzer

from mmpyconv.ops import PyConv2d, PyConv3d, pyconv_cost, pyconv_impl


def test_levels_are_conv3d_with_the_plan_kernels():
    m = PyConv3d(32, 64, (3, 5, 7, 9), temporal_kernel_size=(1, 3, 3, 5), stride=(1, 2, 2))
    assert [tuple(lvl.kernel_size) for lvl in m.levels] == [(1, 3, 3), (3, 5, 5), (3, 7, 7),
                                                             (5, 9, 9)]
    assert [lvl.groups for lvl in m.levels] == [1, 4, 8, 16]
    assert [lvl.out_channels for lvl in m.levels] == [16, 16, 16, 16]
    x = torch.randn(2, 32, 5, 12, 13)
    out = m(x)
    assert out.shape == (2, 64, 5, 6, 7)
    # Each slice of the output is its level, as torch's own conv3d computes it.
    for i, lvl in enumerate(m.levels):
        k = lvl.kernel_size
        expected = F.conv3d(x, lvl.weight, None, (1, 2, 2), tuple((s - 1) // 2 for s in k), 1,
                            lvl.groups)
        torch.testing.assert_close(out[:, 16 * i:16 * (i + 1)], expected)


def test_one_temporal_size_applies_to_every_level():
    m = PyConv3d(16, 16, (3, 5), temporal_kernel_size=3)
    assert [lvl.kernel_size[0] for lvl in m.levels] == [3, 3]


@pytest.mark.parametrize('kwargs', [
    dict(temporal_kernel_size=(1, 3, 5), stride=(1, 2, 2), dilation=1, bias=True),
    dict(temporal_kernel_size=3, stride=2, dilation=(1, 2, 2), bias=False),
])
def test_dense_form_equals_reference_in_values_and_gradients(kwargs):
    torch.manual_seed(0)
    m = PyConv3d(32, 48, (3, 5, 7), groups=(1, 4, 8), level_channels=(16, 16, 16), **kwargs)
    if m.levels[0].bias is not None:
        for lvl in m.levels:
            torch.nn.init.normal_(lvl.bias)
    x = torch.randn(2, 32, 6, 11, 10)
    results = {}
    for impl in ('reference', 'dense'):
        xi = x.clone().requires_grad_()
        m.zero_grad()
        with pyconv_impl(impl):
            out = m(xi)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        grads = [p.grad.clone() for p in m.parameters()]
        results[impl] = (out.detach(), xi.grad, grads)
    ref, dense = results['reference'], results['dense']
    torch.testing.assert_close(dense[0], ref[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dense[1], ref[1], rtol=1e-4, atol=1e-4)
    for a, b in zip(dense[2], ref[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('impl', ['depthwise', 'triton'])
def test_2d_only_impls_refuse_and_name_the_ones_that_run(impl):
    m = PyConv3d(16, 16, (3, 5), impl=impl)
    with pytest.raises(RuntimeError, match='2D PyConvs only; use impl="reference"'):
        m(torch.randn(1, 16, 3, 8, 8))


def test_auto_runs_a_3d_plan_on_the_cpu():
    m = PyConv3d(16, 16, (3, 5))
    with pyconv_impl('reference'):
        expected = m(torch.ones(1, 16, 3, 8, 8))
    torch.testing.assert_close(m(torch.ones(1, 16, 3, 8, 8)), expected)


@pytest.mark.parametrize('kwargs,match', [
    (dict(temporal_kernel_size=2), 'temporal kernel size 2 must be a positive odd int'),
    (dict(temporal_kernel_size=(1, 3, 3)), 'temporal_kernel_size: 3'),
    (dict(stride=(1, 2)), r'stride must be a positive int or 3 positive ints'),
    (dict(padding=(0, 1, 1)), 'does not match the PyConv levels'),
    (dict(impl='fast'), "impl='fast' is not a PyConv implementation"),
])
def test_invalid_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyConv3d(16, 16, (3, 5), **kwargs)


def test_a_frame_batch_is_refused_with_the_shape_it_needs():
    with pytest.raises(ValueError, match=r'\(N, 16, T, H, W\), got \(1, 16, 8, 8\)'):
        PyConv3d(16, 16, (3, 5))(torch.randn(1, 16, 8, 8))


def test_built_by_mmcv_as_any_conv_layer():
    layer = build_conv_layer(dict(type='PyConv3d', kernel_size=(3, 5)), 16, 32, stride=(1, 2, 2),
                             padding=None)
    assert isinstance(layer, PyConv3d) and layer.stride == (1, 2, 2)
    module = ConvModule(16, 32, (3, 5), padding='same', conv_cfg=dict(type='PyConv3d'),
                        norm_cfg=dict(type='BN3d'))
    assert module(torch.randn(1, 16, 4, 8, 8)).shape == (1, 32, 4, 8, 8)


def test_cost_is_what_the_flop_counter_counts():
    m = PyConv3d(32, 64, (3, 5, 7, 9), temporal_kernel_size=(1, 3, 3, 3), stride=(1, 2, 2))
    cost = pyconv_cost(m, (4, 16, 16))
    assert cost['pyconv']['params'] == sum(p.numel() for p in m.parameters())
    assert cost['pyconv']['flops'] == FlopAnalyzer(m, (torch.randn(1, 32, 4, 16, 16), )).total()
    plain = torch.nn.Conv3d(32, 64, 3, stride=(1, 2, 2), padding=1, bias=False)
    assert cost['conv']['flops'] == FlopAnalyzer(plain, (torch.randn(1, 32, 4, 16, 16), )).total()


def test_inflated_2d_weights_see_a_still_clip_as_the_2d_layer_sees_its_frame():
    """Each 2D kernel repeated over t frames and divided by t: on a clip of one repeated frame,
    every frame away from the clip's ends is the 2D layer's output on that frame."""
    torch.manual_seed(0)
    m2d = PyConv2d(32, 64, (3, 5, 7, 9), stride=2)
    m3d = PyConv3d(32, 64, (3, 5, 7, 9), temporal_kernel_size=(1, 3, 5, 3), stride=(1, 2, 2))
    with torch.no_grad():
        for lvl2, lvl3 in zip(m2d.levels, m3d.levels):
            t = lvl3.kernel_size[0]
            lvl3.weight.copy_(lvl2.weight[:, :, None].expand_as(lvl3.weight) / t)
    frame = torch.randn(1, 32, 15, 15)
    clip = frame[:, :, None].expand(1, 32, 7, 15, 15)
    out = m3d(clip)
    for t in range(2, 5):  # the largest temporal kernel (5) reaches 2 frames each way
        torch.testing.assert_close(out[:, :, t], m2d(frame), rtol=1e-5, atol=1e-5)
