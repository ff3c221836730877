"""configs/pyconvdet against their metafile, the one list of them: each entry's config has the
entry's name (mmdet's style: algorithm, backbone, neck, schedule, dataset), detector, backbone,
checkpoint, parameter count and its collection's recipe and architecture; it builds, and its
feature maps have the widths its neck takes and the strides that its heads' anchors and RoI
extractors assume; the backbone is frozen and kept in eval mode as mmdet does it for ResNet; a
PyConv detector differs from its ResNet-50 baseline in the backbone only; the baselines are
mmdet's configs with mmdet's published results; the README states every entry's numbers."""
import ast
import functools
import glob
import inspect
import math
import os.path as osp
import re
from typing import Dict, List, Tuple

import pytest
import torch
import yaml
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from tool_harness import markdown_rows_by_config, metafile_backbone

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'pyconvdet')
with open(osp.join(CONFIG_DIR, 'metafile.yml')) as f:
    META = yaml.safe_load(f)
COLLECTIONS = {c['Name']: c for c in META['Collections']}
MODELS = META['Models']
BY_NAME = {m['Name']: m for m in MODELS}
README = open(osp.join(CONFIG_DIR, 'README.md')).read()
# The Collections of mmdet's own ResNet-50 configs are named after the detector, plus this.
BASELINE = ' (baseline)'
BASELINES = [m for m in MODELS if m['In Collection'].endswith(BASELINE)]
# Baselines that are mmdet's configs with mmdet's checkpoints (SSD's ResNet-50 baseline is ours:
# mmdet's SSD has a VGG backbone).
MMDET_BASELINES = [m for m in BASELINES if 'Weights' in m]
WITH_BASELINE = [m for m in MODELS if m['In Collection'] + BASELINE in COLLECTIONS]

# {algorithm}[{input size}]_{backbone}{depth}[_{neck}]_[{GPUs}xb{batch per GPU}-]{schedule}_
# {dataset}, as mmdet names its configs; the schedule is Nx (N times 12 epochs) or Ne (N epochs).
NAME = re.compile(r'^(?P<algorithm>[a-z-]+?)(?P<size>\d*)_(?P<backbone>[a-z]+)(?P<depth>\d+)'
                  r'(?:_(?P<neck>[a-z]+))?_(?:(?P<gpus>\d+)xb(?P<batch>\d+)-)?'
                  r'(?P<epochs>\d+)(?P<unit>[xe])_(?P<dataset>[a-z]+)$')
EPOCHS_PER_X = 12  # mmdet's 1x schedule
ABBREVIATIONS = {'ResNet': 'r'}  # mmdet's short backbone names; the others are lower-cased
# The algorithm of a config name: its metafile Collection and the mmdet detector it builds.
ALGORITHMS = {
    'faster-rcnn': ('Faster R-CNN', 'FasterRCNN'),
    'retinanet': ('RetinaNet', 'RetinaNet'),
    'mask-rcnn': ('Mask R-CNN', 'MaskRCNN'),
    'pyconvssd': ('PyConvSSD', 'SingleStageDetector'),
    'ssd': ('SSD', 'SingleStageDetector'),
}
DATASETS = {'coco': ('COCO', 'CocoDataset')}  # name: (metafile Training Data, mmdet dataset)
# A metafile metric and README column: its metafile Task and the COCO evaluator's metric.
METRICS = {'box AP': ('Object Detection', 'bbox'), 'mask AP': ('Instance Segmentation', 'segm')}
# What each metafile training technique means in a config.
TECHNIQUES = {
    'SGD with Momentum': lambda cfg: (cfg.optim_wrapper.optimizer.type == 'SGD'
                                      and cfg.optim_wrapper.optimizer.momentum > 0),
    'Weight Decay': lambda cfg: cfg.optim_wrapper.optimizer.weight_decay > 0,
}


def _roi_extractors(net) -> list:
    roi_head = getattr(net, 'roi_head', None)
    return [getattr(roi_head, name) for name in ('bbox_roi_extractor', 'mask_roi_extractor')
            if getattr(roi_head, name, None) is not None]


def _is_pyconv(module) -> bool:
    from mmpyconv.ops.pyconv import PyConv2d
    return isinstance(module, PyConv2d)


# What each metafile architecture entry means in a built detector.
ARCHITECTURE = {
    'Pyramidal Convolution': lambda net: any(_is_pyconv(m) for m in net.modules()),
    'ResNet': lambda net: type(net.backbone).__name__ == 'ResNet',
    'FPN': lambda net: type(net.neck).__name__ == 'FPN',
    'RPN': lambda net: type(getattr(net, 'rpn_head', None)).__name__ == 'RPNHead',
    'RoIAlign': lambda net: bool(_roi_extractors(net)) and all(
        type(layer).__name__ == 'RoIAlign' for e in _roi_extractors(net) for layer in e.roi_layers),
    'Focal Loss': lambda net: type(getattr(getattr(net, 'bbox_head', None), 'loss_cls',
                                           None)).__name__ == 'FocalLoss',
    'Mask Head': lambda net: getattr(getattr(net, 'roi_head', None), 'with_mask', False),
}


@functools.lru_cache(maxsize=None)
def load(path: str) -> Config:
    return Config.fromfile(osp.join(REPO, path))


@functools.lru_cache(maxsize=None)
def build(path: str):
    """The config's detector, on the meta device (shapes without memory or compute)."""
    from mmdet.registry import MODELS as DET_MODELS
    cfg = load(path)
    with torch.device('meta'):
        return DET_MODELS.build(cfg.model)


def assignments(path: str) -> Dict[str, ast.expr]:
    """{name: value} of the top-level assignments of a config file."""
    with open(osp.join(REPO, path)) as f:
        tree = ast.parse(f.read())
    return {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def local_chain(path: str) -> List[str]:
    """The config file and the files of this repository it inherits, nearest first."""
    base = assignments(path).get('_base_')
    bases = [] if base is None else ast.literal_eval(base)
    chain = [path]
    for parent in [bases] if isinstance(bases, str) else bases:
        if '::' not in parent:  # not another package's config
            chain += local_chain(osp.normpath(osp.join(osp.dirname(path), parent)))
    return chain


def name_parts(model: dict) -> Dict[str, str]:
    match = NAME.match(model['Name'])
    assert match, f"{model['Name']} is not an mmdet-style config name"
    assert match['algorithm'] in ALGORITHMS, (
        f"{match['algorithm']}: add its Collection and detector to ALGORITHMS")
    return match.groupdict()


def inner_dataset(cfg: dict) -> dict:
    while 'dataset' in cfg:  # RepeatDataset and the like
        cfg = cfg['dataset']
    return cfg


def epochs(cfg: Config) -> int:
    """Epochs of the dataset the config trains on (a RepeatDataset's repeats included)."""
    count, dataset = cfg.train_cfg.max_epochs, cfg.train_dataloader.dataset
    while 'dataset' in dataset:
        count *= dataset.get('times', 1)
        dataset = dataset['dataset']
    return count


def input_shape(cfg: Config) -> Tuple[int, int]:
    """(H, W) of a landscape test image after the test pipeline's Resize."""
    (resize, ) = [t for t in inner_dataset(cfg.test_dataloader.dataset)['pipeline']
                  if t['type'] == 'Resize']
    width, height = resize['scale']
    return height, width


def backbone_setup(backbone: dict) -> tuple:
    return (backbone['frozen_stages'], backbone['norm_eval'], backbone['norm_cfg']['type'],
            backbone['norm_cfg']['requires_grad'], backbone['style'])


def readme_rows() -> Dict[str, List[Dict[str, str]]]:
    return markdown_rows_by_config(README)


def test_metafile_lists_every_config():
    configs = sorted(f'configs/pyconvdet/{osp.basename(p)}'
                     for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
    listed = [m['Config'] for m in MODELS]
    assert len(set(listed)) == len(listed)
    unlisted, missing = sorted(set(configs) - set(listed)), sorted(set(listed) - set(configs))
    assert not unlisted, f'configs without a metafile entry: {unlisted}'
    assert not missing, f'metafile entries without a config: {missing}'
    for model in MODELS:
        assert model['Name'] == osp.basename(model['Config'])[:-3]


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_config_is_its_metafile_entry(model):
    cfg = load(model['Config'])
    meta, part = model['Metadata'], name_parts(model)
    collection = COLLECTIONS[model['In Collection']]['Metadata']
    family, depth = metafile_backbone(model)
    algorithm, detector = ALGORITHMS[part['algorithm']]

    # The baselines (ResNet-50) are the detector's own Collection with BASELINE appended.
    assert model['In Collection'] == algorithm + (BASELINE if family == 'ResNet' else '')
    assert cfg.model.type == detector
    assert (part['backbone'], int(part['depth'])) == (
        ABBREVIATIONS.get(family, family.lower()), depth)
    assert (cfg.model.backbone.type, cfg.model.backbone.depth) == (family, depth)
    assert cfg.model.neck.type == meta['Neck']
    if part['neck']:
        assert part['neck'] == meta['Neck'].lower()
    if part['size']:
        assert input_shape(cfg) == (int(part['size']), ) * 2

    per_unit = EPOCHS_PER_X if part['unit'] == 'x' else 1
    assert epochs(cfg) == meta['Epochs'] == int(part['epochs']) * per_unit
    gpus = int(collection['Training Resources'].split()[0])
    batch = cfg.train_dataloader.batch_size
    if part['gpus']:
        assert (int(part['gpus']), int(part['batch'])) == (gpus, batch)
    assert gpus * batch == collection['Batch Size'] == cfg.auto_scale_lr.base_batch_size

    data, dataset = DATASETS[part['dataset']]
    assert collection['Training Data'] == data
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert inner_dataset(loader.dataset)['type'] == dataset
    for technique in collection['Training Techniques']:
        assert TECHNIQUES[technique](cfg), technique

    assert cfg.default_scope == 'mmdet'
    # The README asks for the authors' ImageNet checkpoints under their own file names in
    # checkpoints/; mmdet's ResNet configs load torchvision's. Either is a plain `Pretrained`.
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained'
    assert init_cfg.checkpoint == (f'torchvision://resnet{depth}' if family == 'ResNet' else
                                   f'checkpoints/{family.lower()}{depth}.pth')


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_custom_imports_once_per_config_chain(model):
    """A PyConv config loads mmpyconv exactly once along its chain of files (so that a config
    inheriting it can change the list); the baselines are mmdet's alone."""
    cfg = load(model['Config'])
    setters = [p for p in local_chain(model['Config']) if 'custom_imports' in assignments(p)]
    if metafile_backbone(model)[0] == 'ResNet':
        assert setters == [] and 'custom_imports' not in cfg
    else:
        assert len(setters) == 1, setters
        assert 'mmpyconv' in cfg.custom_imports.imports
        assert cfg.custom_imports.allow_failed_imports is False


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_backbone_is_set_up_as_mmdet_sets_up_resnet(model):
    """Frozen stages, norm_eval and norms as the ResNet-50 baselines (mmdet's configs) have
    them, and the built backbone behaves so: the frozen parts take no gradient and every
    BatchNorm keeps its statistics in training mode."""
    (expected, ) = {backbone_setup(load(m['Config']).model.backbone) for m in BASELINES}
    cfg = load(model['Config'])
    assert backbone_setup(cfg.model.backbone) == expected

    backbone = build(model['Config']).backbone
    backbone.train()  # (mmdet's ResNet.train returns None)
    frozen = cfg.model.backbone.frozen_stages
    stages = set()
    for name, param in backbone.named_parameters():
        match = re.match(r'layer(\d+)\.', name)
        stage = int(match[1]) if match else 0  # the stem
        stages.add(stage)
        assert param.requires_grad == (stage > frozen), name
    assert stages == set(range(len(backbone.res_layers) + 1))
    norms = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    assert norms and (not any(m.training for m in norms)) == cfg.model.backbone.norm_eval


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_config_builds_with_matching_feature_maps(model):
    """Parameters as the metafile says; the backbone's outputs have the widths the neck takes,
    and the neck's levels the strides of the heads' anchors and RoI extractors."""
    cfg = load(model['Config'])
    net = build(model['Config']).eval()  # (BatchNorm on a 1x1 map needs eval mode)
    assert sum(p.numel() for p in net.parameters()) == model['Metadata']['Parameters']
    for architecture in COLLECTIONS[model['In Collection']]['Metadata']['Architecture']:
        assert architecture in ARCHITECTURE, f'{architecture}: add its check to ARCHITECTURE'
        assert ARCHITECTURE[architecture](net), architecture

    height, width = input_shape(cfg)
    feats = net.backbone(torch.empty(1, 3, height, width, device='meta'))
    widths = [f.shape[1] for f in feats]
    assert widths == list(cfg.model.neck.in_channels)
    if hasattr(net.backbone, 'stage_channels'):
        assert widths == [net.backbone.stage_channels[i] for i in net.backbone.out_indices]
    feats = net.neck(feats)

    def size(stride_h: int, stride_w: int) -> Tuple[int, int]:
        return math.ceil(height / stride_h), math.ceil(width / stride_w)

    heads = [getattr(net, h) for h in ('rpn_head', 'bbox_head') if hasattr(net, h)]
    assert heads
    for head in heads:
        strides = head.prior_generator.strides
        assert [tuple(f.shape[2:]) for f in feats] == [size(sh, sw) for sw, sh in strides]
        scores = head(feats)[0]
        for score, feat, priors in zip(scores, feats, head.prior_generator.num_base_priors):
            assert tuple(score.shape) == (1, priors * head.cls_out_channels, *feat.shape[2:])
    for extractor in _roi_extractors(net):
        assert extractor.out_channels == feats[0].shape[1]
        assert len(extractor.featmap_strides) <= len(feats)
        for feat, stride in zip(feats, extractor.featmap_strides):
            assert tuple(feat.shape[2:]) == size(stride, stride)



def without_exact_resume(cfg: dict) -> None:
    """The config less the ExactResumeHook ours add (the baselines are mmdet's, unchanged)."""
    hooks = [h for h in cfg.pop('custom_hooks', []) if h['type'] != 'ExactResumeHook']
    if hooks:
        cfg['custom_hooks'] = hooks

@pytest.mark.parametrize('model', WITH_BASELINE, ids=lambda m: m['Name'])
def test_pyconv_detector_is_its_baseline_with_another_backbone(model):
    part = name_parts(model)
    baseline = BY_NAME[model['Name'].replace(f"_{part['backbone']}{part['depth']}_", '_r50_', 1)]
    assert baseline['In Collection'] == model['In Collection'] + BASELINE
    ours, theirs = load(model['Config']).to_dict(), load(baseline['Config']).to_dict()
    for cfg in (ours, theirs):
        cfg['model'].pop('backbone')
        cfg.pop('custom_imports', None)
        cfg.pop('pretrained', None)
        without_exact_resume(cfg)
    assert ours == theirs


@pytest.mark.parametrize('model', MMDET_BASELINES, ids=lambda m: m['Name'])
def test_baseline_is_mmdets_config_with_mmdets_results(model):
    import mmdet
    values = assignments(model['Config'])
    assert set(values) == {'_base_'}, 'a baseline only inherits mmdet\'s config'
    scope, config = ast.literal_eval(values['_base_']).split('::')
    assert scope == 'mmdet' and osp.basename(config) == osp.basename(model['Config'])
    mim = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
    with open(osp.join(mim, osp.dirname(config), 'metafile.yml')) as f:
        (theirs, ) = [m for m in yaml.safe_load(f)['Models']
                      if m['Config'] == f'configs/{config}']
    assert theirs['Name'] == model['Name']
    assert model['Results'] == theirs['Results']
    assert model['Weights'] == theirs['Weights']
    assert model['Metadata']['Epochs'] == theirs['Metadata']['Epochs']

    cfg = load(model['Config'])
    evaluated = cfg.test_evaluator.metric
    for result in model['Results']:
        assert result['Dataset'] == COLLECTIONS[model['In Collection']]['Metadata'][
            'Training Data']
        for metric in result['Metrics']:
            task, coco_metric = METRICS[metric]
            assert result['Task'] == task
            assert coco_metric in evaluated


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_readme_states_the_metafile_entry(model):
    rows = readme_rows().get(osp.basename(model['Config']), [])
    assert len(rows) == 1, f"README.md has {len(rows)} rows for {model['Config']}, not one"
    (row, ) = rows
    meta = model['Metadata']
    assert row['Backbone'] == meta['Backbone']
    if 'Detector' in row:
        assert row['Detector'] + BASELINE * model['In Collection'].endswith(BASELINE) == \
            model['In Collection']
    assert row['Params (M)'] == f"{meta['Parameters'] / 1e6:.2f}"
    assert row['FLOPs (G)'] == f"{meta['FLOPs'] / 1e9:.1f}"
    published = {metric: value for result in model.get('Results', ())
                 for metric, value in result['Metrics'].items()}
    assert set(published) <= set(row), 'a published result the README leaves out'
    for column in set(METRICS) & set(row):
        assert row[column] == (f'{published[column]:.1f}' if column in published else '-'), \
            column
    if 'Weights' in row:
        assert model['Weights'] in row['Weights'] if 'Weights' in model else \
            row['Weights'] == '-'


def test_readme_names_existing_configs():
    assert sorted(readme_rows()) == sorted(osp.basename(m['Config']) for m in MODELS)
    for name in set(re.findall(r'(?<![/\w.-])([\w-]+_coco\.py)\b', README)):
        assert osp.isfile(osp.join(CONFIG_DIR, name)), name


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_collections_point_at_their_code(model):
    """A Collection's Code is the file of ours that defines a part of its detectors (backbone,
    neck or head); the baselines have no part of ours."""
    net = build(model['Config'])
    parts = [getattr(net, name) for name in ('backbone', 'neck', 'rpn_head', 'bbox_head')
             if hasattr(net, name)]
    roi_head = getattr(net, 'roi_head', None)
    parts += [roi_head, getattr(roi_head, 'bbox_head', None), getattr(roi_head, 'mask_head', None)]
    ours = {osp.relpath(inspect.getsourcefile(type(p)), REPO) for p in parts
            if p is not None and type(p).__module__.startswith('mmpyconv')}
    code = COLLECTIONS[model['In Collection']].get('Code')
    if code is None:
        assert not any(type(m).__module__.startswith('mmpyconv') for m in net.modules())
    else:
        assert code['URL'] in ours


def test_pyconvssd_is_its_resnet_baseline_with_pyconv_backbone_and_head():
    """PyConvSSD300 and its ResNet-50 baseline share neck, anchors, data and schedule."""
    ours = load('configs/pyconvdet/pyconvssd300_pyconvresnet50_8xb8-120e_coco.py').to_dict()
    theirs = load('configs/pyconvdet/ssd300_r50_8xb8-120e_coco.py').to_dict()
    assert (ours['model']['bbox_head']['type'], theirs['model']['bbox_head']['type']) == (
        'PyConvSSDHead', 'SSDHead')
    for cfg in (ours, theirs):
        cfg['model'].pop('backbone')
        without_exact_resume(cfg)
        head = cfg['model']['bbox_head']
        for key in ('type', 'pyconv_kernels', 'feat_channels'):
            head.pop(key, None)
        for key in ('custom_imports', 'pyconv_kernels'):
            cfg.pop(key, None)
    assert ours == theirs
