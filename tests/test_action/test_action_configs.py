"""configs/pyconvaction: every config builds its recognizer in mmaction2 and runs a clip; a
config that inherits mmaction2's own TSN config and only swaps the backbone type works."""
import glob
import json
import os
import sys

import pytest
import torch
from mmengine.config import Config

from tool_harness import ROOT, markdown_rows_by_config, ok, run

CONFIG_DIR = os.path.join(ROOT, 'configs', 'pyconvaction')
CONFIGS = sorted(glob.glob(os.path.join(CONFIG_DIR, '*.py')) +
                 glob.glob(os.path.join(CONFIG_DIR, 'tiny', '*.py')))


def build(cfg: Config):
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    backbone = cfg.model.backbone
    # The ImageNet files are not here; counting and running need no weights.
    backbone.pop('init_cfg', None)
    backbone.pop('pretrained', None)
    return MODELS.build(cfg.model).eval()


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.relpath(p, CONFIG_DIR))
def test_config_builds_and_runs_a_clip(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmaction'
    model = build(cfg)
    pyconv = 'pyconv' in os.path.basename(path)
    assert type(model.backbone).__name__.startswith('PyConv') == pyconv
    three_d = cfg.model.type == 'Recognizer3D'
    size = 64
    clip = (torch.rand(1, 1, 3, 16, size, size) if three_d else torch.rand(1, 8, 3, size, size))
    with torch.no_grad():
        feats, kwargs = model.extract_feat(clip, test_mode=True)
        scores = model.cls_head(feats, **kwargs)
    assert scores.shape == (1, cfg.model.cls_head.num_classes)
    if pyconv and not three_d:
        # The 2D backbone in mmaction2's registry hands TSN's head one tensor.
        assert model.backbone.single_output_as_tensor


def test_pyconv_configs_keep_mmaction2s_recipe():
    """Only the backbone differs from the baseline beside each PyConv config."""
    pairs = [('tsn_pyconvresnet50_8xb32-1x1x8-100e_kinetics400-rgb.py',
              'tsn_r50_8xb32-1x1x8-100e_kinetics400-rgb.py'),
             ('i3d_pyconvresnet3d50_8xb8-32x2x1-100e_kinetics400-rgb.py',
              'i3d_r50_8xb8-32x2x1-100e_kinetics400-rgb.py')]
    for ours, baseline in pairs:
        a = Config.fromfile(os.path.join(CONFIG_DIR, ours)).to_dict()
        b = Config.fromfile(os.path.join(CONFIG_DIR, baseline)).to_dict()
        for key in set(a) | set(b):
            if key in ('model', 'custom_imports', 'custom_hooks', 'pretrained'):
                continue
            assert a.get(key) == b.get(key), (ours, key)
        a['model'].pop('backbone'), b['model'].pop('backbone')
        assert a['model'] == b['model'], ours
    i3d = Config.fromfile(os.path.join(CONFIG_DIR, pairs[1][0])).model.backbone
    resnet3d = Config.fromfile(os.path.join(CONFIG_DIR, pairs[1][1])).model.backbone
    for key in ('conv1_kernel', 'conv1_stride_t', 'pool1_stride_t', 'inflate', 'pretrained2d'):
        assert i3d[key] == resnet3d[key], key


def test_readme_and_metafile_list_every_kinetics_config():
    import yaml
    with open(os.path.join(CONFIG_DIR, 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    listed = {os.path.basename(m['Config']) for m in models}
    shipped = {os.path.basename(p) for p in glob.glob(os.path.join(CONFIG_DIR, '*.py'))}
    assert listed == shipped
    with open(os.path.join(CONFIG_DIR, 'README.md')) as f:
        rows = markdown_rows_by_config(f.read())
    assert shipped <= {os.path.basename(c) for c in rows}
    with open(os.path.join(ROOT, 'model-index.yml')) as f:
        assert 'configs/pyconvaction/metafile.yml' in yaml.safe_load(f)['Import']


# A user's config: mmaction2's TSN, the backbone type swapped, mmpyconv imported by the config.
# Run in a fresh interpreter, as mmaction2's tools would: mmpyconv is imported (custom_imports)
# before mmaction2's registry, so its registration waits for that import.
USER_CONFIG = '''
_base_ = 'mmaction::recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py'
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
model = dict(backbone=dict(type='PyConvResNet', pretrained={pretrained!r}))
'''
PROBE = r'''
import json, sys, torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
cfg = Config.fromfile(sys.argv[1])
loaded = sorted(m for m in ('mmaction.registry', 'mmpyconv') if m in sys.modules)
init_default_scope(cfg.default_scope)
from mmaction.registry import MODELS
try:
    model = MODELS.build(cfg.model).eval()
except ValueError as e:
    print(json.dumps(dict(loaded=loaded, error=str(e))))
    sys.exit(0)
with torch.no_grad():
    feats, kwargs = model.extract_feat(torch.rand(1, 8, 3, 64, 64), test_mode=True)
    scores = model.cls_head(feats, **kwargs)
print(json.dumps(dict(loaded=loaded, backbone=type(model.backbone).__name__,
                      depth=model.backbone.depth, scores=list(scores.shape))))
'''


@pytest.mark.parametrize('pretrained', [None, 'inherited'])
def test_mmaction_tsn_config_with_the_backbone_type_swapped(tmp_path, pretrained):
    config = tmp_path / 'tsn_user.py'
    text = USER_CONFIG.format(pretrained=pretrained)
    if pretrained == 'inherited':  # the user did not drop mmaction2's ResNet-50 weights
        text = text.replace(", pretrained='inherited'", '')
    config.write_text(text)
    out = ok(run([sys.executable, '-c', PROBE, str(config)], cwd=str(tmp_path), timeout=240))
    report = json.loads(out.strip().splitlines()[-1])
    # mmpyconv came with the config; mmaction2's registry was not loaded yet.
    assert report['loaded'] == ['mmpyconv']
    if pretrained is None:
        assert report['backbone'] == 'PyConvResNet' and report['depth'] == 50
        assert report['scores'] == [1, 400]
    else:
        assert 'resnet50-11ad3fa6.pth' in report['error']
        assert 'checkpoint of another network' in report['error']
        assert 'pretrained=None' in report['error']
