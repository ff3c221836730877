"""The ImageNet configs: they load, carry the authors' recipes, build their models, pass the
tools' checks, and agree with their metafiles and READMEs."""
import glob
import os
import re

import pytest
import torch
import yaml
from mmengine.config import Config
from tool_harness import ROOT

FAMILIES = ('pyconvresnet', 'pyconvhgresnet')
CONFIGS = sorted(p for family in FAMILIES
                 for p in glob.glob(os.path.join(ROOT, 'configs', family, '*.py')))
IMAGENET = [p for p in CONFIGS if p.endswith(('_in1k.py', '-320px.py'))]
NAME = re.compile(r'^(pyconv(?:hg)?resnet)(\d+)_8xb(\d+)(-cutmix-coslr-300e)?_in1k(-320px)?$')


def load(path):
    return Config.fromfile(path)


def pipeline_types(pipeline):
    return [t['type'] for t in pipeline]


def test_every_depth_has_a_config():
    names = {os.path.basename(p)[:-3] for p in IMAGENET}
    for depth in (18, 34, 50, 101, 152):
        assert f'pyconvresnet{depth}_8xb32_in1k' in names
    for depth in (50, 101, 152):
        assert f'pyconvhgresnet{depth}_8xb32_in1k' in names
    for depth in (50, 101):
        assert f'pyconvresnet{depth}_8xb128-cutmix-coslr-300e_in1k' in names
        assert f'pyconvresnet{depth}_8xb128-cutmix-coslr-300e_in1k-320px' in names


@pytest.mark.parametrize('path', IMAGENET, ids=os.path.basename)
def test_imagenet_recipe(path):
    cfg = load(path)
    family, depth, batch, strong, px320 = NAME.match(os.path.basename(path)[:-3]).groups()
    assert cfg.custom_imports == dict(imports=['mmpyconv'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmpretrain'
    backbone = cfg.model.backbone
    assert backbone.type == {'pyconvresnet': 'PyConvResNet',
                             'pyconvhgresnet': 'PyConvHGResNet'}[family]
    assert backbone.depth == int(depth)
    assert cfg.model.head.num_classes == 1000
    assert cfg.model.head.in_channels == (512 if int(depth) < 50 else 2048)
    assert cfg.train_dataloader.batch_size == int(batch)
    assert cfg.train_dataloader.dataset.type == 'ImageNet'

    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.momentum, optimizer.weight_decay) == ('SGD', 0.9, 1e-4)
    train = cfg.train_dataloader.dataset.pipeline
    assert pipeline_types(train) == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip',
                                     'PackInputs']
    assert train[1].scale == 224
    test = cfg.test_dataloader.dataset.pipeline
    assert pipeline_types(test) == ['LoadImageFromFile', 'ResizeEdge', 'CenterCrop',
                                    'PackInputs']
    assert cfg.val_dataloader.dataset.pipeline == test
    assert (test[1].scale, test[2].crop_size) == ((366, 320) if px320 else (256, 224))
    assert cfg.tta_pipeline[2].crop_size == test[2].crop_size

    if strong:
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert optimizer.lr == 0.4 and cfg.auto_scale_lr.base_batch_size == 1024 == 8 * 128
        assert cfg.param_scheduler.type == 'CosineAnnealingLR'
        assert cfg.param_scheduler.T_max == 300 == cfg.train_cfg.max_epochs
        assert cfg.model.train_cfg.augments.type == 'CutMix'
        assert cfg.model.head.loss.use_soft
    else:
        assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
        assert optimizer.lr == 0.1 and cfg.auto_scale_lr.base_batch_size == 256 == 8 * 32
        assert cfg.param_scheduler.type == 'MultiStepLR'
        assert cfg.param_scheduler.milestones == [30, 60, 80]
        assert cfg.param_scheduler.gamma == 0.1 and cfg.train_cfg.max_epochs == 90


def metafile_models():
    models = []
    for family in FAMILIES:
        with open(os.path.join(ROOT, 'configs', family, 'metafile.yml')) as f:
            models += yaml.safe_load(f)['Models']
    return models


def test_metafiles_cover_the_configs():
    models = metafile_models()
    assert sorted(os.path.join(ROOT, m['Config']) for m in models) == IMAGENET
    for m in models:
        assert m['Name'] == os.path.basename(m['Config'])[:-3]


@pytest.mark.parametrize('model', metafile_models(), ids=lambda m: m['Name'])
def test_metafile_entry_matches_its_config(model):
    from mmengine.registry import MODELS, init_default_scope

    from mmpyconv.runner_utils import check_config_keys
    cfg = load(os.path.join(ROOT, model['Config']))
    init_default_scope(cfg.default_scope)
    # The tools' typo checks accept every shipped config.
    check_config_keys(cfg, ['train_dataloader', 'val_dataloader', 'test_dataloader'])
    with torch.device('meta'):
        classifier = MODELS.build(cfg.model)
    assert sum(p.numel() for p in classifier.parameters()) == model['Metadata']['Parameters']


def readme_top1(family):
    """{config name: top-1} from the README's tables ('Top-1 (%)' or 'Top-1 (%), <crop>'
    columns; the config link of the row, or its link labelled <crop>)."""
    found, header = {}, None
    for line in open(os.path.join(ROOT, 'configs', family, 'README.md')):
        if not line.startswith('|'):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if header is None:
            header = cells
            continue
        row = dict(zip(header, cells))
        links = re.findall(r'\[(\w+)\]\(([\w.-]+)\.py\)',
                           row.get('Config') or row.get('Configs', ''))
        for column, value in row.items():
            if not column.startswith('Top-1 (%)') or not re.fullmatch(r'\d+\.\d+', value):
                continue
            label = column.partition(', ')[2]
            names = [name for text, name in links if not label or text == label]
            assert len(names) == 1, line
            found[names[0]] = float(value)
    return found


def test_readmes_state_the_metafile_accuracies():
    published = {m['Name']: m['Results'][0]['Metrics']['Top 1 Accuracy']
                 for m in metafile_models() if m['Results']}
    expected = {
        'pyconvresnet50_8xb32_in1k': 77.88, 'pyconvresnet101_8xb32_in1k': 79.01,
        'pyconvresnet152_8xb32_in1k': 79.52, 'pyconvhgresnet50_8xb32_in1k': 78.48,
        'pyconvhgresnet101_8xb32_in1k': 79.22, 'pyconvhgresnet152_8xb32_in1k': 79.36,
        'pyconvresnet50_8xb128-cutmix-coslr-300e_in1k': 79.44,
        'pyconvresnet50_8xb128-cutmix-coslr-300e_in1k-320px': 80.59,
        'pyconvresnet101_8xb128-cutmix-coslr-300e_in1k': 80.58,
        'pyconvresnet101_8xb128-cutmix-coslr-300e_in1k-320px': 81.49,
    }
    assert published == expected
    in_readmes = {**readme_top1('pyconvresnet'), **readme_top1('pyconvhgresnet')}
    assert in_readmes == expected
    resnet = open(os.path.join(ROOT, 'configs', 'pyconvresnet', 'README.md')).read()
    for baseline in ('76.12', '78.00', '78.45'):
        assert f'| {baseline} |' in resnet


def test_tiny_shapes_config():
    cfg = load(os.path.join(ROOT, 'configs', 'pyconvresnet', 'pyconvresnet18_1xb32_shapes.py'))
    assert cfg.default_scope == 'mmpretrain' and cfg.custom_imports.imports == ['mmpyconv']
    assert cfg.model.backbone.type == 'PyConvResNet' and cfg.model.backbone.depth == 18
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 6
    assert cfg.train_dataloader.dataset.data_root == 'data/shapes'
