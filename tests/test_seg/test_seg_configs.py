"""Every config of configs/pyconvseg: resolves (mmseg:: bases), builds, and is the network and
recipe its name and README say; the metafile lists them with the published results."""
import glob
import os.path as osp
import re

import pytest
import torch
import yaml
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'pyconvseg')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '*.py')))
# file name -> (backbone type, depth, decode head)
EXPECTED = {
    'ade20k.py': ('PyConvResNet', 50, 'PyConvPH'),
    'ade20k_pyconvresnet101.py': ('PyConvResNet', 101, 'PyConvPH'),
    'ade20k_pyconvresnet152.py': ('PyConvResNet', 152, 'PyConvPH'),
    'ade20k_pyconvhgresnet50.py': ('PyConvHGResNet', 50, 'PyConvPH'),
    'ade20k_pyconvhgresnet101.py': ('PyConvHGResNet', 101, 'PyConvPH'),
    'ade20k_pyconvhgresnet152.py': ('PyConvHGResNet', 152, 'PyConvPH'),
    'ade20k_resnet50.py': ('ResNet', 50, 'PyConvPH'),
    'ade20k_resnet101.py': ('ResNet', 101, 'PyConvPH'),
    'ade20k_resnet152.py': ('ResNet', 152, 'PyConvPH'),
    'ade20k_resnet50_psphead.py': ('ResNet', 50, 'PSPHead'),
}


def test_every_config_is_known():
    assert sorted(osp.basename(c) for c in CONFIGS) == sorted(EXPECTED)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_is_the_named_network(path):
    cfg = Config.fromfile(path)
    backbone, depth, head = EXPECTED[osp.basename(path)]
    assert cfg.default_scope == 'mmseg'
    assert 'mmpyconv.models.decode_heads' in cfg.custom_imports['imports']
    model = cfg.model
    assert (model.backbone.type, model.backbone.depth, model.decode_head.type) == (
        backbone, depth, head)
    assert (model.backbone.strides, model.backbone.dilations) in (
        ((2, 2, 1, 1), (1, 1, 2, 4)),  # PyConv: the stem has no max-pool, stage 1 strides
        ((1, 2, 1, 1), (1, 1, 2, 4)))  # ResNet: stem max-pool
    assert model.backbone.out_indices == (0, 1, 2, 3)
    for part in (model.decode_head, model.auxiliary_head):
        assert part.num_classes == 150 and part.align_corners
        assert part.norm_cfg.type == 'SyncBN'
    assert model.backbone.norm_cfg.type == 'SyncBN'
    aux = model.auxiliary_head
    assert (aux.type, aux.in_channels, aux.in_index, aux.channels, aux.num_convs,
            aux.loss_decode.loss_weight) == ('FCNHead', 1024, 2, 256, 1, 0.4)
    assert (model.decode_head.in_channels, model.decode_head.in_index) == (2048, 3)
    if backbone != 'ResNet':
        assert model.backbone.init_cfg.type == 'PyConvPretrained'
        assert model.backbone.init_cfg.checkpoint == (
            f'checkpoints/{backbone.lower()}{depth}.pth')


@pytest.mark.parametrize('name', ['ade20k.py', 'ade20k_resnet50_psphead.py'])
def test_config_builds_at_output_stride_8(name):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    init_default_scope('mmseg')
    with torch.device('meta'):
        model = MODELS.build(cfg.model).eval()
    norms = {type(m).__name__ for m in model.modules() if 'Norm' in type(m).__name__}
    assert norms == {'SyncBatchNorm'}
    # a 473x473 input: the last stages are 60x60, the logits come back at 473x473
    x = torch.empty(1, 3, 473, 473, device='meta')
    feats = model.extract_feat(x)
    assert [tuple(f.shape[1:]) for f in feats][1:] == [(512, 60, 60), (1024, 60, 60),
                                                       (2048, 60, 60)]
    logits = model.encode_decode(x, [dict(img_shape=(473, 473))])
    assert tuple(logits.shape) == (1, 150, 473, 473)


def test_head_parameters_match_the_original():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'ade20k.py'))
    with torch.device('meta'):
        head = MODELS.build(cfg.model.decode_head)
    assert sum(p.numel() for n, p in head.named_parameters()
               if not n.startswith('conv_seg')) == 8_452_608


def test_recipe_is_the_authors():
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'ade20k.py'))
    assert cfg.train_dataloader.batch_size * 4 == 16  # 4 GPUs x 4 images
    assert cfg.crop_size == (473, 473)
    transforms = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert transforms == ['LoadImageFromFile', 'CheckSegMap', 'LoadAnnotations', 'RandomResize',
                          'RandomRotate', 'RandomCrop', 'RandomFlip', 'PackSegInputs']
    assert cfg.train_dataloader.dataset.pipeline[3]['ratio_range'] == (0.5, 2.0)
    assert cfg.train_dataloader.dataset.pipeline[4]['degree'] == 10
    optim = cfg.optim_wrapper
    assert (optim.optimizer.type, optim.optimizer.lr, optim.optimizer.momentum,
            optim.optimizer.weight_decay) == ('SGD', 0.01, 0.9, 0.0001)
    assert optim.paramwise_cfg.custom_keys == {'decode_head': dict(lr_mult=10.0),
                                              'auxiliary_head': dict(lr_mult=10.0)}
    (poly, ) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.end) == ('PolyLR', 0.9, 0.0,
                                                               cfg.train_cfg.max_iters)
    assert cfg.train_cfg.max_iters == 100 * (20210 // 16)
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(473, 473), stride=(316, 316))
    # multi-scale + flip testing: long side 512 x 0.5 ... 1.75, both flips
    assert cfg.tta_model.type == 'SegTTAModel'
    tta = cfg.tta_pipeline[-1]['transforms']
    assert [t['scale'] for t in tta[0]] == [(256, 256), (384, 384), (512, 512), (640, 640),
                                            (768, 768), (896, 896)]
    assert [t['prob'] for t in tta[1]] == [0.0, 1.0]


def test_metafile_lists_every_config_with_the_published_results():
    with open(osp.join(CONFIG_DIR, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    models = {m['Config']: m for m in meta['Models']}
    assert sorted(models) == sorted(f'configs/pyconvseg/{name}' for name in EXPECTED)
    published = {  # multi-scale + flip mIoU / pixel accuracy on ADE20K val, from the authors
        'ade20k.py': (43.31, 81.18), 'ade20k_pyconvresnet101.py': (44.58, 81.77),
        'ade20k_pyconvresnet152.py': (45.64, 82.36), 'ade20k_resnet50.py': (42.88, 80.97),
        'ade20k_resnet101.py': (44.39, 81.60), 'ade20k_resnet152.py': (45.28, 81.89)
    }
    with open(osp.join(CONFIG_DIR, 'README.md')) as f:
        readme = f.read()
    for name, (miou, acc) in published.items():
        metrics = models[f'configs/pyconvseg/{name}']['Results'][0]['Metrics']
        assert (metrics['mIoU(ms+flip)'], metrics['aAcc(ms+flip)']) == (miou, acc)
        assert re.search(rf'{miou:.2f}.*{acc:.2f}.*\({name}\)', readme), name
    for name in set(EXPECTED) - set(published):
        assert models[f'configs/pyconvseg/{name}'].get('Results') is None
