"""PyConvResNet as a drop-in for ResNet in the toolboxes' own packaged configs.

Each case writes the config a user writes (docs/use_in_your_config.md: the snippets below are
that page's, verbatim), inheriting a packaged ResNet config through its ``<scope>::`` path,
builds the model in the config's default scope, and trains one step on tiny images. The
expectations come from the inherited config itself: its ResNet, built as it was written, gives
the feature shapes (channels and output stride) and block dilations the heads were configured
for; its ``frozen_stages``, ``norm_eval`` and ``norm_cfg`` say what is frozen, in eval mode,
and of which norm type.
"""
import importlib
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from mmpyconv.models import PyConvResNet
from mmpyconv.ops import PyConv2d

DOC = Path(__file__).parents[2] / 'docs' / 'use_in_your_config.md'

CLASSIFICATION = """\
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyConvResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'))
"""

DETECTION = """\
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,  # drops the base's init_cfg, a torchvision ResNet-50 checkpoint
        type='PyConvResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch'))
"""

SEGMENTATION = """\
_base_ = 'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
model = dict(
    pretrained=None,  # the base's open-mmlab://resnet50_v1c is a ResNet checkpoint
    backbone=dict(
        _delete_=True,
        type='PyConvResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(2, 2, 1, 1),  # ResNet's (1, 2, 1, 1): output stride 8
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        contract_dilation=True))
"""

# An mmpretrain classifier's checkpoint, given in the backbone dict of any snippet above.
PRETRAINED_CLASSIFIER = """\
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/pyconvresnet50_in1k.pth',
                      prefix='backbone.'),
"""

SNIPPETS = (CLASSIFICATION, DETECTION, SEGMENTATION, PRETRAINED_CLASSIFIER)
IMAGE = 64  # pixels a side: a tiny image, divisible by the output stride 32


def edit(text: str, *replacements: tuple) -> str:
    """``text`` with each ``(old, new)`` replaced in turn; each ``old`` must be there, so that
    a variant always differs from the snippet it is made from."""
    for old, new in replacements:
        assert old in text, f'{old!r} is not in the snippet'
        text = text.replace(old, new)
    return text


def drop_line(text: str, start: str) -> str:
    """``text`` without its line that starts with ``start``."""
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(start)]
    assert len(kept) == len(lines) - 1, f'no single line starts with {start!r}'
    return ''.join(kept)


HG = ("type='PyConvResNet'", "type='PyConvHGResNet'")
RETINANET = 'retinanet/retinanet_r50_fpn_1x_coco.py'
PSPNET = 'pspnet/pspnet_r50-d8'

CASES = [
    pytest.param(CLASSIFICATION, id='mmpretrain-resnet50'),
    pytest.param(DETECTION, id='mmdet-retinanet'),
    pytest.param(edit(DETECTION, (RETINANET, 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')),
                 id='mmdet-mask-rcnn'),
    pytest.param(SEGMENTATION, id='mmseg-pspnet-d8'),
    pytest.param(edit(SEGMENTATION, (PSPNET, 'deeplabv3/deeplabv3_r50-d8')),
                 id='mmseg-deeplabv3-d8'),
    pytest.param(edit(DETECTION, HG), id='mmdet-retinanet-hg'),
    pytest.param(edit(SEGMENTATION, HG), id='mmseg-pspnet-d8-hg'),
    # Two more ResNet arguments the packaged configs use: mmseg's multi_grid at output stride
    # 16, and mmdet's plugins (GCNet), copied from those configs.
    pytest.param(
        edit(SEGMENTATION, (PSPNET, 'deeplabv3/deeplabv3_r101-d16-mg124'),
             ('depth=50', 'depth=101'), ('dilations=(1, 1, 2, 4)', 'dilations=(1, 1, 1, 2)'),
             ("strides=(2, 2, 1, 1),  # ResNet's (1, 2, 1, 1): output stride 8",
              "strides=(2, 2, 2, 1),\n        multi_grid=(1, 2, 4),")),
        id='mmseg-deeplabv3-r101-d16-mg124'),
    pytest.param(
        edit(DETECTION, (RETINANET, 'gcnet/mask-rcnn_r50-gcb-r4-c3-c5_fpn_1x_coco.py'),
             ("style='pytorch'", "style='pytorch',\n        plugins=[dict(cfg=dict("
              "type='ContextBlock', ratio=1. / 4), stages=(False, True, True, True), "
              "position='after_conv3')]")),
        id='mmdet-gcnet-plugins'),
]


def load(tmp_path: Path, text: str) -> Config:
    """The config as the tools load it: from a file, importing ``custom_imports``."""
    path = tmp_path / 'my_config.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def base_path(text: str) -> str:
    return re.search(r"^_base_ = '([^']+)'$", text, re.M)[1]


def build(cfg: Config) -> torch.nn.Module:
    """The model as mmengine's Runner builds it (the top-level ``data_preprocessor`` is the
    model's unless the model has its own), in the toolbox's registry."""
    model = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return registry(cfg).build(model)


def registry(cfg: Config):
    return importlib.import_module(f'{cfg.default_scope}.registry').MODELS


def classification_batch(cfg: Config, n: int) -> dict:
    from mmpretrain.structures import DataSample
    return dict(
        inputs=[torch.randint(0, 256, (3, IMAGE, IMAGE), dtype=torch.uint8) for _ in range(n)],
        data_samples=[DataSample().set_gt_label(i) for i in range(n)])


def detection_batch(cfg: Config, n: int) -> dict:
    from mmdet.testing import demo_mm_inputs
    heads = [cfg.model.get('bbox_head'), cfg.model.get('roi_head', {}).get('bbox_head')]
    num_classes = next(head.num_classes for head in heads if head)
    return demo_mm_inputs(batch_size=n, image_shapes=[(3, IMAGE, IMAGE)] * n, num_items=[1] * n,
                          num_classes=num_classes,
                          with_mask='mask_head' in cfg.model.get('roi_head', {}))


def segmentation_batch(cfg: Config, n: int) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(IMAGE, IMAGE), ori_shape=(IMAGE, IMAGE)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, cfg.model.decode_head.num_classes, (1, IMAGE, IMAGE)))
        samples.append(sample)
    return dict(
        inputs=[torch.randint(0, 256, (3, IMAGE, IMAGE), dtype=torch.uint8) for _ in range(n)],
        data_samples=samples)


BATCHES = dict(mmpretrain=classification_batch, mmdet=detection_batch,
               mmseg=segmentation_batch)


def stage_of(name: str) -> int:
    """0 for the stem, i for ``layer{i}``: what ``frozen_stages=i`` freezes is stage <= i."""
    match = re.match(r'layer(\d+)\.', name)
    return int(match[1]) if match else 0


def block_dilations(backbone: torch.nn.Module) -> list:
    return [[block.conv2.dilation for block in getattr(backbone, f'layer{i}')]
            for i in range(1, len(backbone.res_layers) + 1)]


@pytest.mark.parametrize('text', CASES)
def test_packaged_resnet_config_trains_with_pyconv(tmp_path, text):
    cfg = load(tmp_path, text)
    resnet_cfg = get_config(base_path(text))
    if cfg.default_scope == 'mmseg':
        # The packaged config pads every image to its 512x1024 training crop; keep them tiny.
        cfg.model.data_preprocessor.size = (IMAGE, IMAGE)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = build(cfg)
        model.init_weights()
        model.train()
        backbone = model.backbone
        assert type(backbone).__name__ == cfg.model.backbone.type
        data = model.data_preprocessor(BATCHES[cfg.default_scope](cfg, 2), True)
        features = []
        backbone.register_forward_hook(lambda module, inputs, outputs: features.append(outputs))
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        assert torch.isfinite(loss)
        loss.backward()

        # The ResNet the packaged config had: the heads were written for its features.
        resnet = registry(cfg).build(resnet_cfg.model.backbone)
        resnet.eval()  # mmpretrain's ResNet.train() returns None
        with torch.no_grad():
            expected = resnet(data['inputs'])
    (outs, ) = features
    side = data['inputs'].shape[-1]
    strides = [side // f.shape[-1] for f in outs]
    resnet_strides = [side // f.shape[-1] for f in expected]
    assert strides == resnet_strides, f"output strides {strides}, the config's {resnet_strides}"
    assert [f.shape for f in outs] == [f.shape for f in expected], 'channels differ'
    assert block_dilations(backbone) == block_dilations(resnet), 'dilations differ'
    for plugin in cfg.model.backbone.get('plugins') or ():
        built = [m for m in backbone.modules() if type(m).__name__ == plugin.cfg.type]
        assert len(built) == sum(type(m).__name__ == plugin.cfg.type for m in resnet.modules())
        assert built and all(p.grad is not None for m in built for p in m.parameters())

    # Frozen stages, norm_eval and the norm type: as the ResNet the config had them.
    frozen_stages = resnet.frozen_stages
    stem = backbone.conv1.weight
    assert (stem.grad is None and not stem.requires_grad) if frozen_stages >= 0 else \
        stem.grad is not None
    levels = {f'{name}.levels.{i}': level.weight for name, module in backbone.named_modules()
              if isinstance(module, PyConv2d) for i, level in enumerate(module.levels)}
    frozen = [name for name in levels if stage_of(name) <= frozen_stages]
    trained = [name for name in levels if stage_of(name) > frozen_stages]
    assert trained and bool(frozen) == (frozen_stages > 0)
    for name in frozen:
        assert levels[name].grad is None and not levels[name].requires_grad, name
    for name in trained:
        grad = levels[name].grad
        assert grad is not None and grad.abs().sum() > 0 and torch.isfinite(grad).all(), name

    norms = {name: m for name, m in backbone.named_modules() if isinstance(m, _BatchNorm)}
    assert {type(m) for m in norms.values()} == {
        type(m) for m in resnet.modules() if isinstance(m, _BatchNorm)}, 'norm types differ'
    for name, norm in norms.items():
        in_training = not resnet.norm_eval and stage_of(name) > frozen_stages
        assert norm.training == in_training, name


@pytest.mark.parametrize('text,fragments', [
    pytest.param(edit(SEGMENTATION, ('strides=(2, 2, 1, 1)', 'strides=(1, 2, 1, 1)')),
                 ['strides=(1, 2, 1, 1)', 'strides=(2, 2, 1, 1) for output stride 8'],
                 id='mmseg-resnet-strides'),
    pytest.param(drop_line(SEGMENTATION, '    pretrained=None,'),
                 ["pretrained='open-mmlab://resnet50_v1c'", 'model.pretrained=None'],
                 id='mmseg-inherited-pretrained'),
    pytest.param(drop_line(DETECTION, '        _delete_=True,'),
                 ["init_cfg.checkpoint='torchvision://resnet50'", '_delete_=True'],
                 id='mmdet-without-delete'),
    pytest.param(edit(DETECTION, (RETINANET, 'faster_rcnn/faster-rcnn_r50-caffe_fpn_1x_coco.py'),
                      ("style='pytorch'", "style='caffe'")),
                 ["style='caffe'", 'drop style'], id='mmdet-caffe-style'),
])
def test_what_was_not_changed_is_refused_with_what_to_do(tmp_path, text, fragments):
    cfg = load(tmp_path, text)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        with pytest.raises(ValueError) as info:
            build(cfg)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert '\n' not in message


def test_an_mmpretrain_classifier_checkpoint_loads_with_its_prefix(tmp_path):
    torch.manual_seed(0)
    source = PyConvResNet(depth=50)
    checkpoint = tmp_path / 'pyconvresnet50_in1k.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in source.state_dict().items()},
                    meta=dict()), checkpoint)
    line = edit(PRETRAINED_CLASSIFIER, ('checkpoints/pyconvresnet50_in1k.pth', str(checkpoint)))
    with_prefix = edit(DETECTION, ("        type='PyConvResNet',\n",
                                   line + "        type='PyConvResNet',\n"))
    without_prefix = edit(with_prefix, (",\n                      prefix='backbone.'", ''))
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = build(load(tmp_path, with_prefix)).backbone
        backbone.init_weights()
        for key, value in source.state_dict().items():
            torch.testing.assert_close(backbone.state_dict()[key], value, msg=key)
        backbone = build(load(tmp_path, without_prefix)).backbone
        with pytest.raises(ValueError, match="add prefix='backbone.'"):
            backbone.init_weights()


def test_the_doc_shows_exactly_these_snippets():
    doc = DOC.read_text()
    for snippet in SNIPPETS:
        assert snippet in doc
    blocks = re.findall(r'^```python\n(.*?)^```$', doc, re.M | re.S)
    assert sorted(blocks) == sorted(SNIPPETS), 'every python block of the doc is tested here'
