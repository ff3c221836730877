"""tools/deploy/export_onnx.py: each task family exports with dynamic axes and onnxruntime
matches PyTorch at the export size and at another batch and size; every PyConv is one grouped
conv per level in the graph whatever impl the config sets; a model that cannot export, a
checkpoint that does not fit and a failed parity leave no file behind.

Small models on small inputs, checkpoints of freshly built models ({'state_dict': ...}).
"""
import os
import re
import textwrap

import pytest
import torch

from tool_harness import ROOT, load_tool, snapshot, tool

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

export_tool = load_tool('deploy/export_onnx.py')
CONFIGS = os.path.join(ROOT, 'configs')
CLASSIFIER = os.path.join(CONFIGS, 'pyconvresnet', 'pyconvresnet18_1xb32_shapes.py')
SEGMENTOR = os.path.join(CONFIGS, 'pyconvseg', 'tiny',
                         'pyconvsegnet_pyconvresnet18_tiny-ade20k-64x64.py')
TSN = os.path.join(CONFIGS, 'pyconvaction', 'tiny', 'tsn_pyconvresnet18_tiny-kinetics.py')
I3D = os.path.join(CONFIGS, 'pyconvaction', 'tiny', 'i3d_pyconvresnet3d18_tiny-kinetics.py')
DET_BACKBONE = "backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None)"
RETINANET = f'''
_base_ = {os.path.join(CONFIGS, 'pyconvdet', 'retinanet_pyconvresnet50_fpn_1x_coco.py')!r}
model = dict(
    {DET_BACKBONE},
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=32),
    bbox_head=dict(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1))
'''
FASTER_RCNN = f'''
_base_ = {os.path.join(CONFIGS, 'pyconvdet', 'faster-rcnn_pyconvresnet50_fpn_1x_coco.py')!r}
model = dict(
    {DET_BACKBONE},
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=32),
                  bbox_head=dict(num_classes=3, in_channels=32, fc_out_channels=64)))
'''
# name: (config, export arguments, (batch, size) of the second check)
FAMILIES = {
    'classifier': (CLASSIFIER, ['--shape', '32'], (2, 48)),
    'segmentor': (SEGMENTOR, ['--shape', '64'], (2, 80)),
    'segmentor-argmax': (SEGMENTOR, ['--shape', '64', '--output', 'argmax'], (2, 48)),
    'detector': ('retinanet.py', ['--shape', '64'], (2, 96)),
    'recognizer2d': (TSN, ['--shape', '32', '--frames', '4'], (2, 48)),
    'recognizer3d': (I3D, ['--shape', '32', '--frames', '4'], (2, 48)),
}


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    # mmengine's logger, made before any test captures output, writes to pytest's capture of
    # the whole session rather than to a test's capsys (closed after that test).
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance()
    path = tmp_path_factory.mktemp('export')
    for name, text in (('retinanet.py', RETINANET), ('faster_rcnn.py', FASTER_RCNN)):
        (path / name).write_text(textwrap.dedent(text))
    return path


def config_path(folder, config):
    return config if os.path.isabs(config) else str(folder / config)


_checkpoints = {}


def checkpoint(folder, config, *cfg_options):
    """A checkpoint of the freshly built model of ``config``."""
    key = (config, cfg_options)
    if key not in _checkpoints:
        from mmpyconv.runner.args import load_config
        from mmpyconv.runner.preflight import build_model
        overrides = dict(o.split('=', 1) for o in cfg_options) or None
        torch.manual_seed(0)
        model = build_model(load_config(config, overrides))
        path = str(folder / f'ckpt_{len(_checkpoints)}.pth')
        torch.save({'state_dict': model.state_dict()}, path)
        _checkpoints[key] = path
    return _checkpoints[key]


@pytest.mark.parametrize('name', list(FAMILIES))
def test_export_parity_dynamic(name, folder, capsys):
    config, extra, (batch, size) = FAMILIES[name]
    config = config_path(folder, config)
    ckpt = checkpoint(folder, config)
    out = str(folder / f'{name}.onnx')
    assert export_tool.main([config, ckpt, '--out', out, '--dynamic', *extra]) == 0
    printed = capsys.readouterr().out
    print(printed)
    assert os.path.isfile(out)
    relative = float(re.search(r'relative ([\d.e+-]+)', printed).group(1))
    assert relative <= 1e-4

    # Another batch and spatial size than the export's: the axes are dynamic.
    model, _ = export_tool.load_model(config, ckpt)
    module = export_tool.export_module(model, config, 'argmax' if 'argmax' in name else 'logits')
    frames = int(extra[extra.index('--frames') + 1]) if '--frames' in extra else None
    x = export_tool.example_input(model, (size, size), frames, batch, seed=1)
    with export_tool.reference_pyconvs(module), torch.no_grad():
        expected = module(x)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    got = export_tool.run_onnxruntime(out, x)
    assert got[0].shape[0] == batch
    diff, scale = export_tool.compare(expected, got, argmax='argmax' in name)
    print(f'{name}: second input {tuple(x.shape)}: difference {diff:.3g}, scale {scale:.3g}, '
          f'relative {diff / scale:.3g}')
    assert diff <= 1e-3 * scale


def _convs(module):
    """(groups, kernel) of every conv a reference-form forward computes: each level of a
    PyConv is an nn.Conv2d of its own, as is every plain conv."""
    return sorted((m.groups, tuple(m.kernel_size)) for m in module.modules()
                  if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize('impl', ['nested', 'depthwise'])
def test_reference_form_whatever_impl(impl, folder, capsys):
    import onnx
    options = [f'model.backbone.pyconv_cfg.impl={impl}', 'model.backbone.pyconv_cfg.type=PyConv2d']
    ckpt = checkpoint(folder, CLASSIFIER)
    out = str(folder / f'{impl}.onnx')
    assert export_tool.main([CLASSIFIER, ckpt, '--out', out, '--shape', '32',
                             '--cfg-options', *options]) == 0
    model, _ = export_tool.load_model(CLASSIFIER, ckpt, dict(o.split('=') for o in options))
    layers = [m for m in model.modules() if isinstance(m, export_tool.PyConv2d)]
    assert layers and all(m.impl == impl for m in layers)
    multi = sum(len(m.levels) > 1 for m in layers)
    assert multi > 0
    graph = onnx.load(out).graph
    convs = sorted((next((a.i for a in n.attribute if a.name == 'group'), 1),
                    tuple(next(a.ints for a in n.attribute if a.name == 'kernel_shape')))
                   for n in graph.node if n.op_type == 'Conv')
    assert convs == _convs(model)
    assert len(convs) == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    print(capsys.readouterr().out)


def test_model_that_cannot_export(folder):
    config = config_path(folder, 'faster_rcnn.py')
    ckpt = checkpoint(folder, config)
    out = folder / 'refused' / 'faster_rcnn.onnx'
    out.parent.mkdir()
    before = snapshot(out.parent)
    from mmpyconv.runner import UsageError
    with pytest.raises(UsageError) as info:
        export_tool.main([config, ckpt, '--out', str(out), '--shape', '64', '--dynamic'])
    message = str(info.value)
    print(message)
    assert 'cannot be exported' in message and 'two-stage' in message and '\n' not in message
    assert snapshot(out.parent) == before and not out.exists()


def test_checkpoint_that_does_not_fit(folder):
    """Through the command line: one line, exit status 2, nothing written."""
    ckpt = checkpoint(folder, SEGMENTOR)
    out = folder / 'misfit' / 'model.onnx'
    out.parent.mkdir()
    result = tool('deploy/export_onnx.py', CLASSIFIER, ckpt, '--out', str(out), '--shape', '32',
                  timeout=120)
    print(result.stderr[-2000:])
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'does not fit' in errors[0], result.stderr[-2000:]
    assert os.listdir(out.parent) == []


def test_failed_parity_writes_nothing(folder, capsys):
    ckpt = checkpoint(folder, CLASSIFIER)
    out = folder / 'parity' / 'model.onnx'
    out.parent.mkdir()
    assert export_tool.main([CLASSIFIER, ckpt, '--out', str(out), '--shape', '32',
                             '--tolerance', '0']) == 1
    assert 'nothing written' in capsys.readouterr().err
    assert os.listdir(out.parent) == []


def test_traceable_adaptive_pool_matches_pytorch():
    """The pool swapped in for export (PyConvPH's global context) equals nn.AdaptiveAvgPool2d,
    also with bins that do not divide the size or outnumber it."""
    for size, bins in ((8, 9), (13, 9), (18, 9), (5, (3, 7))):
        x = torch.randn(2, 3, size, size + 1)
        torch.testing.assert_close(export_tool.TraceableAdaptiveAvgPool2d(bins)(x),
                                   torch.nn.AdaptiveAvgPool2d(bins)(x))


def test_simplify(folder, capsys):
    """--simplify (onnxsim, where it installs) keeps the parity and the dynamic axes."""
    pytest.importorskip('onnxsim')
    ckpt = checkpoint(folder, TSN)
    out = str(folder / 'simplified.onnx')
    assert export_tool.main([TSN, ckpt, '--out', out, '--shape', '32', '--frames', '4',
                             '--dynamic', '--simplify']) == 0
    print(capsys.readouterr().out)
    model, _ = export_tool.load_model(TSN, ckpt)
    module = export_tool.export_module(model, TSN)
    x = export_tool.example_input(model, (40, 40), 4, 3, seed=2)
    with torch.no_grad():
        expected = [module(x)]
    diff, scale = export_tool.compare(expected, export_tool.run_onnxruntime(out, x))
    assert diff <= 1e-3 * scale
