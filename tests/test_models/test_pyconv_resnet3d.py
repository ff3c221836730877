"""PyConvResNet3d / PyConvHGResNet3d: mmaction2's ResNet3d arguments, the 2D arch tables, and
2D ImageNet weights inflated so that a still clip gives the 2D network's features."""
import os

import pytest
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer

from mmpyconv.models.backbones import PyConvHGResNet, PyConvHGResNet3d, PyConvResNet, PyConvResNet3d
from mmpyconv.ops import PyConv3d

FAMILIES = {'PyConvResNet': (PyConvResNet, PyConvResNet3d),
            'PyConvHGResNet': (PyConvHGResNet, PyConvHGResNet3d)}
# mmaction2's I3D ResNet-50 pattern (configs/recognition/i3d): half the blocks inflated.
I3D_INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random affine BN parameters and statistics, so that every tensor of a checkpoint counts."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.4 - 0.2)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


def temporal_reach(model: PyConvResNet3d) -> int:
    """Input frames each side of an output frame that can reach it through the temporal
    kernels: the clip's ends (zero padding) cannot affect the middle frame of a clip of
    ``2 * reach + 1`` frames or more. Read from the built modules, not from the arguments."""
    reach, scale = (model.conv1.kernel_size[0] - 1) // 2, model.conv1.stride[0]
    scale *= getattr(model.pool1, 'stride', (1, ))[0]
    for i, name in enumerate(model.res_layers):
        for block in getattr(model, name):
            for conv in (block.conv1, block.conv2):
                t = max(conv.kernel_size[0] if isinstance(conv, nn.Conv3d) else max(
                    lvl.kernel_size[0] for lvl in conv.levels), 1)
                reach += (t - 1) // 2 * scale
                scale *= (conv.stride[0] if isinstance(conv, nn.Conv3d) else conv.stride[0])
        if i == 0:
            scale *= getattr(model.pool2, 'stride', (1, ))[0]
    return reach


@pytest.mark.parametrize('family,depth', [('PyConvResNet', 50), ('PyConvResNet', 101),
                                          ('PyConvResNet', 152), ('PyConvResNet', 18),
                                          ('PyConvHGResNet', 50), ('PyConvHGResNet', 101),
                                          ('PyConvHGResNet', 152)])
def test_inflated_weights_see_a_still_clip_as_the_2d_network_sees_its_frame(
        tmp_path, family, depth):
    cls2d, cls3d = FAMILIES[family]
    torch.manual_seed(depth)
    net2d = randomise_norms(cls2d(depth=depth, out_indices=(0, 1, 2, 3)), seed=depth)
    checkpoint = os.path.join(tmp_path, f'{family}{depth}.pth')
    torch.save({'state_dict': net2d.state_dict()}, checkpoint)

    # Deeper networks inflate fewer blocks and skip the temporal pool, which keeps the clip
    # that the middle frame needs short; every pyramid level is inflated in every case.
    deep = depth > 50
    net3d = cls3d(depth=depth, pretrained=checkpoint, pretrained2d=True, conv1_kernel=(5, 7, 7),
                  inflate=I3D_INFLATE if depth == 50 else (1, 0, 1, 0)[:4] if deep else 1,
                  with_pool2=not deep, out_indices=(0, 1, 2, 3),
                  inflate_style='3x3x3' if depth in (18, 101) else '3x1x1')
    net3d.init_weights()
    net3d.eval()
    frames = 2 * temporal_reach(net3d) + 1
    frame = torch.randn(1, 3, 32, 32)
    clip = frame[:, :, None].expand(1, 3, frames, 32, 32)
    with torch.no_grad():
        expected = net2d(frame)
        outs = net3d(clip)
    for stage, (out, exp) in enumerate(zip(outs, expected)):
        middle = out[:, :, out.shape[2] // 2]
        torch.testing.assert_close(middle, exp, rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f'stage {stage}: {m}')
    # Every pyramid level was inflated: each 3D level is its 2D level repeated over time / t.
    for (name, level3d), level2d in zip(
        ((n, m) for n, m in net3d.named_modules() if isinstance(m, PyConv3d)),
        (m for m in net2d.modules() if m.__class__.__name__ == 'PyConv2d')):
        for lvl3, lvl2 in zip(level3d.levels, level2d.levels):
            t = lvl3.kernel_size[0]
            torch.testing.assert_close(lvl3.weight.sum(2), lvl2.weight, msg=name)
            torch.testing.assert_close(lvl3.weight[:, :, 0] * t, lvl2.weight, msg=name)


def test_the_authors_2d_checkpoint_inflates_through_init_cfg(tmp_path):
    """Their layout (conv2.conv2_{i} levels, ...) is renamed, then inflated."""
    from test_tools.test_convert import original
    net = original('PyConvResNet', 50)
    checkpoint = os.path.join(tmp_path, 'pyconvresnet50.pth')
    torch.save(net.state_dict(), checkpoint)
    net3d = PyConvResNet3d(depth=50, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    net3d.init_weights()
    net3d.eval()
    frames = 2 * temporal_reach(net3d) + 1
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = net3d(frame[:, :, None].expand(1, 3, frames, 32, 32))
        expected = net.features(frame)
        # Its features reach ~10 (fan-in init): float error is relative to that.
        torch.testing.assert_close(out[:, :, out.shape[2] // 2], expected, rtol=1e-3,
                                   atol=1e-4 * expected.abs().max().item())


def test_a_3d_checkpoint_loads_as_it_is(tmp_path):
    torch.manual_seed(0)
    source = randomise_norms(PyConvResNet3d(depth=18))
    checkpoint = os.path.join(tmp_path, 'video.pth')
    torch.save({'state_dict': source.state_dict()}, checkpoint)
    net = PyConvResNet3d(depth=18, pretrained=checkpoint)
    net.init_weights()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key], value)


def test_another_networks_checkpoint_is_refused(tmp_path):
    checkpoint = os.path.join(tmp_path, 'resnet.pth')
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(10, 2048)},
               checkpoint)
    with pytest.raises(ValueError, match='checkpoint of another network'):
        PyConvResNet3d(depth=50, pretrained=checkpoint).init_weights()
    with pytest.raises(ValueError, match="torchvision://resnet50.*another network"):
        PyConvResNet3d(depth=50, pretrained='torchvision://resnet50')


def test_mmaction_i3d_arguments_give_its_shapes():
    """The arguments of mmaction2's I3D config (conv1 (5,7,7) at temporal stride 2, temporal
    pool 2, pool2) give its output sizes: 32 frames -> 4, 224 px -> 7."""
    net = PyConvResNet3d(depth=50, conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2,
                         inflate=I3D_INFLATE, out_indices=(0, 1, 2, 3))
    assert net.conv1.kernel_size == (5, 7, 7) and net.conv1.stride == (2, 2, 2)
    blocks = [b for name in net.res_layers for b in getattr(net, name)]
    flags = [f for stage in I3D_INFLATE for f in stage]
    assert [b.conv1.kernel_size[0] for b in blocks] == [3 if f else 1 for f in flags]
    assert {lvl.kernel_size[0] for b in blocks for lvl in b.conv2.levels} == {1}
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 32, 64, 64))
    assert [tuple(o.shape[1:3]) for o in outs] == [(256, 8), (512, 4), (1024, 4), (2048, 4)]


def test_3x3x3_inflates_the_pyramid_and_basic_blocks_inflate_theirs():
    net = PyConvResNet3d(depth=50, inflate_style='3x3x3')
    assert {lvl.kernel_size[0] for lvl in net.layer1[0].conv2.levels} == {3}
    assert net.layer1[0].conv1.kernel_size == (1, 1, 1)
    basic = PyConvResNet3d(depth=18, inflate=(0, 1, 0, 1))
    assert [basic.layer1[0].conv1.levels[0].kernel_size[0],
            basic.layer2[0].conv1.levels[0].kernel_size[0]] == [1, 3]


def test_temporal_strides_and_frozen_stages():
    net = PyConvResNet3d(depth=18, temporal_strides=(1, 2, 2, 1), with_pool2=False,
                         frozen_stages=2, norm_eval=True)
    net.train()
    assert not any(p.requires_grad for p in net.layer2.parameters())
    assert all(p.requires_grad for p in net.layer3.parameters())
    assert not any(m.training for m in net.modules() if isinstance(m, nn.BatchNorm3d))
    assert net(torch.randn(1, 3, 8, 32, 32)).shape == (1, 512, 2, 1, 1)
    assert net.layer2[0].downsample[0].stride == (2, 2, 2)


@pytest.mark.parametrize('kwargs,match', [
    (dict(inflate=((1, 1), 1, 1, 1)), 'stage 0 has 3 blocks'),
    (dict(inflate_style='2x1x1'), "choose '3x1x1' or '3x3x3'"),
    (dict(temporal_strides=(1, 2)), 'temporal_strides .* one entry per stage'),
    (dict(conv1_kernel=(4, 7, 7)), r'conv1_kernel=\(4, 7, 7\) must be \(t, h, w\) with an odd'),
    (dict(non_local=((0, 0, 0), (1, 0, 1, 0), (0, ) * 6, (0, ) * 3)), 'no non-local'),
    (dict(spatial_strides=(1, 2, 2, 2)), 'stem downsamples by 2 only'),
])
def test_refused_arguments_say_what_to_do(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyConvResNet3d(depth=50, **kwargs)


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = PyConvResNet3d(depth=18, stem_channels=16)
    checkpointed = PyConvResNet3d(depth=18, stem_channels=16, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    for net in (plain, checkpointed):
        net(x).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_flops_of_the_video_network_are_the_2d_ones_times_the_frames_plus_inflation():
    """With nothing inflated, no temporal stride and no temporal pooling, the 3D network is the
    2D one applied to every frame: its FLOPs are T times the 2D network's."""
    net3d = PyConvResNet3d(depth=50, inflate=0, conv1_kernel=(1, 7, 7), with_pool2=False)
    net2d = PyConvResNet(depth=50)
    flops3d = FlopAnalyzer(net3d, (torch.randn(1, 3, 4, 64, 64), )).total()
    flops2d = FlopAnalyzer(net2d, (torch.randn(1, 3, 64, 64), )).total()
    assert flops3d == 4 * flops2d
