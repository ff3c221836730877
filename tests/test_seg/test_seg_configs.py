"""configs/pyconvseg against their metafile, the one list of them: each entry's config has the
entry's name (OpenMMLab style, which spells out backbone, output stride, GPUs x batch, schedule,
dataset and crop), network, parameter count and recipe; the README states the entry's numbers;
the old config names still give the same configs; every config builds at its output stride."""
import ast
import functools
import glob
import inspect
import math
import os.path as osp
import re
from typing import Dict, List

import pytest
import torch
import yaml
from mmengine.config import Config

from tool_harness import markdown_rows_by_config, metafile_backbone

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'pyconvseg')
with open(osp.join(CONFIG_DIR, 'metafile.yml')) as f:
    META = yaml.safe_load(f)
COLLECTIONS = {c['Name']: c for c in META['Collections']}
MODELS = META['Models']
README = open(osp.join(CONFIG_DIR, 'README.md')).read()

# {algorithm}_{backbone}{depth}-d{output stride}_{GPUs}xb{batch per GPU}-{k iterations}k_
# {dataset}-{crop height}x{crop width}, as mmseg names its configs.
NAME = re.compile(r'^(?P<algorithm>[a-z]+)_(?P<backbone>[a-z]+)(?P<depth>\d+)-d(?P<stride>\d+)_'
                  r'(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<kiters>\d+)k_(?P<dataset>[a-z0-9]+)-'
                  r'(?P<height>\d+)x(?P<width>\d+)$')
ABBREVIATIONS = {'ResNet': 'r'}  # mmseg's short backbone names; the others are lower-cased
# The names configs/pyconvseg had before the OpenMMLab-style ones: users' commands still run
# them, so each must remain the config it was (ade20k.py is also the README's headline config).
OLD_NAMES = [
    'ade20k.py', 'ade20k_pyconvresnet101.py', 'ade20k_pyconvresnet152.py',
    'ade20k_pyconvhgresnet50.py', 'ade20k_pyconvhgresnet101.py', 'ade20k_pyconvhgresnet152.py',
    'ade20k_resnet50.py', 'ade20k_resnet101.py', 'ade20k_resnet152.py',
    'ade20k_resnet50_psphead.py',
]
# What each metafile training technique means in a config.
TECHNIQUES = {
    'SGD with Momentum': lambda cfg: (cfg.optim_wrapper.optimizer.type == 'SGD'
                                      and cfg.optim_wrapper.optimizer.momentum > 0),
    'Weight Decay': lambda cfg: cfg.optim_wrapper.optimizer.weight_decay > 0,
    'Poly Learning Rate': lambda cfg: [s.type for s in cfg.param_scheduler] == ['PolyLR'],
    'Synchronized BatchNorm': lambda cfg: {
        part.norm_cfg.type for part in (cfg.model.backbone, cfg.model.decode_head,
                                        cfg.model.auxiliary_head)} == {'SyncBN'},
}


@functools.lru_cache(maxsize=None)
def load(path: str) -> Config:
    return Config.fromfile(osp.join(REPO, path))


def name_parts(model: dict) -> Dict[str, str]:
    match = NAME.match(model['Name'])
    assert match, f"{model['Name']} is not an OpenMMLab-style config name"
    return match.groupdict()


def build(cfg: Config):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS
    init_default_scope(cfg.default_scope)
    with torch.device('meta'):
        return SEG_MODELS.build(cfg.model).eval()


def readme_rows() -> Dict[str, List[Dict[str, str]]]:
    return markdown_rows_by_config(README)


def test_metafile_lists_every_config_but_the_old_names():
    configs = {osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))}
    listed = [m['Config'] for m in MODELS]
    assert len(set(listed)) == len(listed)
    assert sorted(listed) == sorted(f'configs/pyconvseg/{c}' for c in configs - set(OLD_NAMES))
    assert set(OLD_NAMES) <= configs
    for model in MODELS:
        assert model['Name'] == osp.basename(model['Config'])[:-3]


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_config_is_its_metafile_entry(model):
    cfg = load(model['Config'])
    meta, part = model['Metadata'], name_parts(model)
    collection = COLLECTIONS[model['In Collection']]['Metadata']
    family, depth = metafile_backbone(model)

    assert part['algorithm'] == model['In Collection'].split()[0].lower()
    assert (part['backbone'], int(part['depth'])) == (
        ABBREVIATIONS.get(family, family.lower()), depth)
    assert (cfg.model.backbone.type, cfg.model.backbone.depth) == (family, depth)
    assert cfg.model.decode_head.type == meta['Decode Head']

    crop = ast.literal_eval(meta['Crop Size'])
    assert (int(part['height']), int(part['width'])) == crop == cfg.crop_size
    assert cfg.model.test_cfg.crop_size == cfg.data_preprocessor.size == crop
    (random_crop, ) = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
    assert random_crop.crop_size == crop

    gpus, batch = int(part['gpus']), int(part['batch'])
    assert gpus * batch == collection['Batch Size']
    assert collection['Training Resources'] == f'{gpus} GPUs'
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.train_cfg.max_iters == meta['Iterations'] == cfg.param_scheduler[0].end
    assert int(part['kiters']) == round(meta['Iterations'] / 1000)

    assert part['dataset'] == collection['Training Data'].lower()
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == f"{collection['Training Data']}Dataset"
    for technique in collection['Training Techniques']:
        assert TECHNIQUES[technique](cfg), technique

    assert cfg.default_scope == 'mmseg'
    assert 'mmpyconv.models.decode_heads' in cfg.custom_imports['imports']
    # The README asks for the authors' ImageNet checkpoints under their own file names in
    # checkpoints/; plain ResNets load torchvision's. Either is a plain `Pretrained` load.
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained'
    assert init_cfg.checkpoint == (f'torchvision://resnet{depth}' if family == 'ResNet' else
                                   f'checkpoints/{family.lower()}{depth}.pth')


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_config_builds_at_its_output_stride(model):
    from mmseg.registry import DATASETS
    cfg = load(model['Config'])
    network = build(cfg)
    assert sum(p.numel() for p in network.parameters()) == model['Metadata']['Parameters']
    norms = {type(m).__name__ for m in network.modules() if 'Norm' in type(m).__name__}
    assert norms == {'SyncBatchNorm'}

    height, width = cfg.crop_size
    stride = int(name_parts(model)['stride'])
    x = torch.empty(1, 3, height, width, device='meta')
    feats = network.extract_feat(x)
    assert tuple(feats[-1].shape[2:]) == (math.ceil(height / stride), math.ceil(width / stride))
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        assert feats[head.in_index].shape[1] == head.in_channels
    classes = DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO['classes']
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == len(
        classes)
    logits = network.encode_decode(x, [dict(img_shape=(height, width))])
    assert tuple(logits.shape) == (1, len(classes), height, width)


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_readme_states_the_metafile_entry(model):
    (row, ) = readme_rows()[osp.basename(model['Config'])]
    meta = model['Metadata']
    assert row['Backbone'] == meta['Backbone']
    assert row['Params (M)'] == f"{meta['Parameters'] / 1e6:.2f}"
    assert row['FLOPs (G)'] == f"{meta['FLOPs'] / 1e9:.1f}"
    columns = {'mIoU (ms+flip)': 'mIoU(ms+flip)', 'Pixel acc. (ms+flip)': 'aAcc(ms+flip)'}
    if 'Results' in model:
        (result, ) = model['Results']
        assert result['Dataset'] == COLLECTIONS[model['In Collection']]['Metadata'][
            'Training Data']
        for column, metric in columns.items():
            assert row[column] == f"{result['Metrics'][metric]:.2f}", column
        assert model['Converted From']['Weights'] in row['Original weights']
    else:
        assert not set(columns) & set(row), 'a result the metafile does not have'


def test_readme_names_existing_configs():
    assert sorted(readme_rows()) == sorted(osp.basename(m['Config']) for m in MODELS)
    for name in set(re.findall(r'(?<![/\w])((?:ade20k|pyconvsegnet|pspnet)[\w.-]*\.py)\b',
                               README)):
        assert osp.isfile(osp.join(CONFIG_DIR, name)), name


def test_collections_point_at_their_code():
    """A Collection's Code is the file of ours that defines its models' decode head."""
    from mmseg.registry import MODELS as SEG_MODELS
    for model in MODELS:
        load(model['Config'])  # its custom_imports register PyConvPH
        head = SEG_MODELS.get(model['Metadata']['Decode Head'])
        code = COLLECTIONS[model['In Collection']].get('Code')
        if code is None:  # the PSPNet baseline: mmseg's PSPHead
            assert not head.__module__.startswith('mmpyconv')
        else:
            assert osp.relpath(inspect.getsourcefile(head), REPO) == code['URL']


@pytest.mark.parametrize('old', OLD_NAMES)
def test_old_name_is_the_same_config(old):
    """Each old name is its backbone and head's config under the new name, nothing changed."""
    family, depth, psphead = re.fullmatch(
        r'ade20k(?:_([a-z]+)(\d+))?(_psphead)?\.py', old).groups()
    backbone = f'{family}-{depth}' if family else 'pyconvresnet-50'  # ade20k.py: the headline
    head = 'PSPHead' if psphead else 'PyConvPH'
    (new, ) = [m['Config'] for m in MODELS if m['Metadata']['Backbone'].lower() == backbone
               and m['Metadata']['Decode Head'] == head]
    alias, config = load(f'configs/pyconvseg/{old}'), load(new)
    assert alias.model == config.model
    assert alias.to_dict() == config.to_dict()


def test_head_parameters_match_the_original():
    """PyConvPH without its classifier has as many parameters as the authors' head."""
    (stated, ) = re.findall(r'Without the classifier\s+the head has ([\d,]+) parameters',
                            README)
    for model in MODELS:
        if model['Metadata']['Decode Head'] == 'PyConvPH':
            head = build(load(model['Config'])).decode_head
            assert sum(p.numel() for n, p in head.named_parameters()
                       if not n.startswith('conv_seg')) == int(stated.replace(',', ''))


def test_recipe_is_the_authors():
    """The authors' ADE20K recipe (github.com/iduta/pyconvsegnet), as the README describes it;
    every config inherits it from the PyConvResNet-50 one."""
    (model, ) = [m for m in MODELS if m['Metadata']['Backbone'] == 'PyConvResNet-50']
    cfg = load(model['Config'])
    transforms = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert transforms == ['LoadImageFromFile', 'CheckSegMap', 'LoadAnnotations', 'RandomResize',
                          'RandomRotate', 'RandomCrop', 'RandomFlip', 'PackSegInputs']
    assert cfg.train_dataloader.dataset.pipeline[3]['ratio_range'] == (0.5, 2.0)
    assert cfg.train_dataloader.dataset.pipeline[4]['degree'] == 10
    optim = cfg.optim_wrapper
    assert (optim.optimizer.lr, optim.optimizer.momentum, optim.optimizer.weight_decay) == (
        0.01, 0.9, 0.0001)
    assert optim.paramwise_cfg.custom_keys == {'decode_head': dict(lr_mult=10.0),
                                              'auxiliary_head': dict(lr_mult=10.0)}
    (poly, ) = cfg.param_scheduler
    assert (poly.power, poly.eta_min) == (0.9, 0.0)
    # 100 epochs of ADE20K's 20,210 training images, 16 per iteration
    assert cfg.train_cfg.max_iters == 100 * (20210 // 16)
    aux = cfg.model.auxiliary_head
    assert (aux.type, aux.in_index, aux.channels, aux.num_convs, aux.loss_decode.loss_weight) == (
        'FCNHead', 2, 256, 1, 0.4)
    for part in (cfg.model.decode_head, cfg.model.auxiliary_head):
        assert part.align_corners
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(473, 473), stride=(316, 316))
    # multi-scale + flip testing: long side 512 x 0.5 ... 1.75, both flips
    assert cfg.tta_model.type == 'SegTTAModel'
    tta = cfg.tta_pipeline[-1]['transforms']
    assert [t['scale'] for t in tta[0]] == [(256, 256), (384, 384), (512, 512), (640, 640),
                                            (768, 768), (896, 896)]
    assert [t['prob'] for t in tta[1]] == [0.0, 1.0]
