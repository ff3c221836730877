"""The ImageNet configs against their metafiles, the one list of them: each entry's config has
the entry's name, backbone, parameter count and its collection's recipe, and builds; every depth
of a backbone's arch table has a config; the READMEs state the metafiles' numbers; the configs
pass the tools' checks."""
import glob
import inspect
import os
import re
from typing import Dict, List

import pytest
import torch
import yaml
from mmengine.config import Config

from tool_harness import ROOT, markdown_rows

FAMILIES = ('pyconvresnet', 'pyconvhgresnet')
CONFIGS = sorted(p for family in FAMILIES
                 for p in glob.glob(os.path.join(ROOT, 'configs', family, '*.py')))
IMAGENET = [p for p in CONFIGS if p.endswith(('_in1k.py', '-320px.py'))]
# OpenMMLab config names: {backbone}{depth}_{GPUs}xb{batch per GPU}[-{recipe}]_{dataset}[-{test
# crop}px], as mmpretrain names its configs.
NAME = re.compile(r'^(?P<backbone>[a-z]+)(?P<depth>\d+)_(?P<gpus>\d+)xb(?P<batch>\d+)'
                  r'(?:-(?P<recipe>[\w-]+?))?_(?P<dataset>in1k)(?:-(?P<crop>\d+)px)?$')
DATASETS = {'in1k': 'ImageNet-1k'}  # mmpretrain's short dataset names
# What each metafile training technique means in a config; a config uses exactly its
# collection's.
TECHNIQUES = {
    'SGD with Momentum': lambda cfg: (cfg.optim_wrapper.optimizer.type == 'SGD'
                                      and cfg.optim_wrapper.optimizer.momentum > 0),
    'Weight Decay': lambda cfg: cfg.optim_wrapper.optimizer.weight_decay > 0,
    'CutMix': lambda cfg: cfg.model.get('train_cfg', {}).get('augments', {}).get(
        'type') == 'CutMix',
    'Cosine Annealing': lambda cfg: cfg.param_scheduler.type == 'CosineAnnealingLR',
    'Mixed Precision Training': lambda cfg: cfg.optim_wrapper.get('type') == 'AmpOptimWrapper',
}


def load(path):
    return Config.fromfile(path)


def pipeline_types(pipeline):
    return [t['type'] for t in pipeline]


def metafiles() -> List[dict]:
    found = []
    for family in FAMILIES:
        with open(os.path.join(ROOT, 'configs', family, 'metafile.yml')) as f:
            found.append(yaml.safe_load(f))
    return found


def metafile_models() -> List[dict]:
    return [model for meta in metafiles() for model in meta['Models']]


COLLECTIONS = {c['Name']: c for meta in metafiles() for c in meta['Collections']}


def name_parts(model: dict) -> Dict[str, str]:
    match = NAME.match(model['Name'])
    assert match, f"{model['Name']} is not an OpenMMLab-style config name"
    return match.groupdict()


def test_metafiles_cover_the_configs():
    models = metafile_models()
    assert sorted(os.path.join(ROOT, m['Config']) for m in models) == IMAGENET
    for m in models:
        assert m['Name'] == os.path.basename(m['Config'])[:-3]


def test_every_depth_has_a_config():
    """Each backbone's collection (the authors' default recipe) has every depth of the
    backbone's arch table."""
    from mmengine.registry import MODELS
    depths = {}  # {backbone: {depth: [collection, ...]}}
    for model in metafile_models():
        backbone = load(os.path.join(ROOT, model['Config'])).model.backbone
        depths.setdefault(backbone.type, {}).setdefault(backbone.depth, []).append(
            model['In Collection'])
    for backbone, collections in depths.items():
        assert sorted(collections) == sorted(MODELS.get(backbone).arch_settings), backbone
        assert all(backbone in names for names in collections.values()), backbone


@pytest.mark.parametrize('model', metafile_models(), ids=lambda m: m['Name'])
def test_config_is_its_metafile_entry(model):
    cfg = load(os.path.join(ROOT, model['Config']))
    part = name_parts(model)
    collection = COLLECTIONS[model['In Collection']]['Metadata']
    assert cfg.custom_imports == dict(imports=['mmpyconv'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmpretrain'

    backbone = cfg.model.backbone
    assert (backbone.type.lower(), backbone.depth) == (part['backbone'], int(part['depth']))
    assert model['In Collection'].split()[0] == backbone.type

    assert DATASETS[part['dataset']] == collection['Training Data']
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == 'ImageNet'
    gpus, batch = int(part['gpus']), int(part['batch'])
    assert cfg.train_dataloader.batch_size == batch
    assert gpus * batch == collection['Batch Size'] == cfg.auto_scale_lr.base_batch_size
    assert cfg.train_cfg.max_epochs == collection['Epochs']
    used = {technique for technique, holds in TECHNIQUES.items() if holds(cfg)}
    assert used == set(collection['Training Techniques'])


@pytest.mark.parametrize('model', metafile_models(), ids=lambda m: m['Name'])
def test_imagenet_recipe_is_the_authors(model):
    """The authors' recipes (github.com/iduta/pyconv), as the READMEs describe them: lr 0.1 per
    256 images, x0.1 at epochs 30/60/80; or lr 0.4 for 1024 with cosine decay over all epochs,
    CutMix with soft labels; RandomResizedCrop 224 + flip; test 256 -> 224 (366 -> 320)."""
    cfg = load(os.path.join(ROOT, model['Config']))
    techniques = COLLECTIONS[model['In Collection']]['Metadata']['Training Techniques']
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.momentum, optimizer.weight_decay) == (0.9, 1e-4)
    train = cfg.train_dataloader.dataset.pipeline
    assert pipeline_types(train) == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip',
                                     'PackInputs']
    assert train[1].scale == 224
    test = cfg.test_dataloader.dataset.pipeline
    assert pipeline_types(test) == ['LoadImageFromFile', 'ResizeEdge', 'CenterCrop',
                                    'PackInputs']
    assert cfg.val_dataloader.dataset.pipeline == test
    crop = name_parts(model)['crop']
    assert (test[1].scale, test[2].crop_size) == ((366, 320) if crop == '320' else (256, 224))
    assert cfg.tta_pipeline[2].crop_size == test[2].crop_size

    if 'Cosine Annealing' in techniques:
        assert optimizer.lr == 0.4 and cfg.auto_scale_lr.base_batch_size == 1024
        assert cfg.param_scheduler.T_max == cfg.train_cfg.max_epochs
        assert cfg.model.head.loss.use_soft
    else:
        assert optimizer.lr == 0.1 and cfg.auto_scale_lr.base_batch_size == 256
        assert cfg.param_scheduler.type == 'MultiStepLR'
        assert cfg.param_scheduler.milestones == [30, 60, 80]
        assert cfg.param_scheduler.gamma == 0.1


@pytest.mark.parametrize('model', metafile_models(), ids=lambda m: m['Name'])
def test_metafile_entry_matches_its_config(model):
    from mmengine.registry import MODELS, init_default_scope

    from mmpyconv.runner import check_config_keys
    cfg = load(os.path.join(ROOT, model['Config']))
    init_default_scope(cfg.default_scope)
    # The tools' typo checks accept every shipped config.
    check_config_keys(cfg, ['train_dataloader', 'val_dataloader', 'test_dataloader'])
    with torch.device('meta'):
        classifier = MODELS.build(cfg.model)
    assert sum(p.numel() for p in classifier.parameters()) == model['Metadata']['Parameters']
    # the head fits the backbone and classifies the dataset's classes
    from mmpretrain.registry import DATASETS
    classes = DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO['classes']
    scores = classifier(torch.empty(1, 3, 224, 224, device='meta'))
    assert tuple(scores.shape) == (1, len(classes))


def test_collections_point_at_their_code():
    """A Collection's Code is the file of ours that defines its models' backbone."""
    from mmengine.registry import MODELS
    for model in metafile_models():
        backbone = MODELS.get(load(os.path.join(ROOT, model['Config'])).model.backbone.type)
        code = COLLECTIONS[model['In Collection']]['Code']['URL']
        assert os.path.relpath(inspect.getsourcefile(backbone), ROOT) == code


def readme_entries(family: str) -> Dict[str, Dict[str, str]]:
    """{config name: {column: cell}} from the README's tables.

    A row may link several configs (`[224](a.py), [320](b.py)`): a column labelled with a link's
    text ('Top-1 (%), 320') belongs to that config, and one labelled with several
    ('FLOPs (G), 224 / 320') gives each config the value at its label's place.
    """
    entries = {}
    with open(os.path.join(ROOT, 'configs', family, 'README.md')) as f:
        rows = markdown_rows(f.read())
    for row in rows:
        configs = row.get('Config') or row.get('Configs', '')
        links = re.findall(r'\[(\w+)\]\(([\w.-]+)\.py\)', configs)
        texts = [text for text, _ in links]
        for text, name in links:
            entry = {}
            for column, cell in row.items():
                base, _, labels = column.partition(', ')
                labels = labels.split(' / ')
                if not set(labels) <= set(texts):
                    entry[column] = cell
                elif text in labels:
                    entry[base] = dict(zip(labels, cell.split(' / ')))[text]
            assert name not in entries, name
            entries[name] = entry
    return entries


@pytest.mark.parametrize('family', FAMILIES)
def test_readme_states_the_metafile(family):
    entries = readme_entries(family)
    models = [m for m in metafile_models() if m['Config'].startswith(f'configs/{family}/')]
    assert sorted(entries) == sorted(m['Name'] for m in models)
    for model in models:
        entry, meta = entries[model['Name']], model['Metadata']
        assert entry['Params (M)'] == f"{meta['Parameters'] / 1e6:.2f}", model['Name']
        assert entry['FLOPs (G)'] == f"{meta['FLOPs'] / 1e9:.2f}", model['Name']
        if 'Results' in model:
            (result, ) = model['Results']
            top1 = result['Metrics']['Top 1 Accuracy']
            assert entry['Top-1 (%)'] == f'{top1:.2f}', model['Name']
            assert model['Converted From']['Weights'] in entry['Original weights']
        else:
            assert entry['Top-1 (%)'] == entry['Original weights'] == '-', model['Name']


def test_readmes_agree_on_the_resnet_baselines():
    """Both READMEs quote the authors' ResNet of the same depth; the same number in both."""
    column = 'ResNet, same depth: Top-1 (%)'
    baselines = {}
    for family in FAMILIES:
        for name, entry in readme_entries(family).items():
            if entry.get(column, '-') != '-':
                baselines.setdefault(NAME.match(name)['depth'], set()).add(entry[column])
    assert baselines and all(len(values) == 1 for values in baselines.values()), baselines


def test_tiny_shapes_config():
    cfg = load(os.path.join(ROOT, 'configs', 'pyconvresnet', 'pyconvresnet18_1xb32_shapes.py'))
    assert cfg.default_scope == 'mmpretrain' and cfg.custom_imports.imports == ['mmpyconv']
    assert cfg.model.backbone.type == 'PyConvResNet' and cfg.model.backbone.depth == 18
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 6
    assert cfg.train_dataloader.dataset.data_root == 'data/shapes'
