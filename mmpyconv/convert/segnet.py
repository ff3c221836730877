"""The PyConvSegNet authors' ADE20K checkpoints (github.com/iduta/pyconvsegnet) for mmseg.

The authors' ``PyConvSegNet`` holds a backbone as ``layer0`` (stem conv, norm) and ``layer1`` ..
``layer4``, the head as ``pyconvhead.*``, the classifier ``cls`` and the auxiliary head ``aux``.
They become an mmseg ``EncoderDecoder`` with a :class:`~mmpyconv.models.decode_heads.PyConvPH`:

=========================================================  =====================================
original                                                   mmseg
=========================================================  =====================================
``layer0.0``, ``layer0.1``                                 ``backbone.conv1``, ``backbone.bn1``
``layer{s}.*`` (``conv2.conv2_{i}`` pyramid levels)        ``backbone.layer{s}.*``
                                                           (``conv2.levels.{i-1}``)
``pyconvhead.local_context.layers.{0,1 | 3,4 | 6,7}``      ``decode_head.local_context.{0|1|2}``
                                                           ``.conv``, ``.bn``
``pyconvhead.global_context.features.{1,2 | 4,5 | 7,8}``   ``decode_head.global_context.{1|2|3}``
                                                           ``.conv``, ``.bn``
``pyconvhead.merge_context.features.{0,1}``                ``decode_head.merge_context.conv|bn``
``cls.1``                                                  ``decode_head.conv_seg``
``aux.{0,1}``, ``aux.4``                                   ``auxiliary_head.convs.0.conv|bn``,
                                                           ``auxiliary_head.conv_seg``
=========================================================  =====================================

The network is read from the checkpoint (PyConvResNet, PyConvHGResNet or a plain ResNet
backbone, its depth, the class count), its config found in ``configs/pyconvseg/metafile.yml``
(or given), and the result checked against that config's model: every source tensor used, every
model tensor filled with the same shape, or :class:`~mmpyconv.convert.layout.ConversionError`
lists what is wrong. Importing this module does not import mmseg; building the target does.
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from ..models.backbones.original_layout import is_original_layout, remap_original_keys
from ..utils.misfit import Misfit
from .classifier import infer_original_arch
from .layout import ConversionError, blocks_per_stage, extract_state_dict

__all__ = ['split_original', 'infer_segnet_arch', 'find_config', 'build_target', 'convert_segnet',
           'convert_segnet_file']

# Index in the original head's nn.Sequential -> our module (a ConvModule or one of its parts).
_HEAD_MODULES = {
    'pyconvhead.local_context.layers': {
        0: 'decode_head.local_context.0.conv', 1: 'decode_head.local_context.0.bn',
        3: 'decode_head.local_context.1.conv', 4: 'decode_head.local_context.1.bn',
        6: 'decode_head.local_context.2.conv', 7: 'decode_head.local_context.2.bn'},
    'pyconvhead.global_context.features': {
        1: 'decode_head.global_context.1.conv', 2: 'decode_head.global_context.1.bn',
        4: 'decode_head.global_context.2.conv', 5: 'decode_head.global_context.2.bn',
        7: 'decode_head.global_context.3.conv', 8: 'decode_head.global_context.3.bn'},
    'pyconvhead.merge_context.features': {
        0: 'decode_head.merge_context.conv', 1: 'decode_head.merge_context.bn'},
    'cls': {1: 'decode_head.conv_seg'},
    'aux': {0: 'auxiliary_head.convs.0.conv', 1: 'auxiliary_head.convs.0.bn',
            4: 'auxiliary_head.conv_seg'},
}
_STEM = {'0': 'conv1', '1': 'bn1'}
_SEQUENTIAL = re.compile(r'^(?P<seq>.+?)\.(?P<index>\d+)\.(?P<rest>.+)$')
_STAGES = re.compile(r'^layer[1-4]\.')


def _head_key(key: str) -> Optional[str]:
    """The mmseg name of a head, classifier or auxiliary tensor; None for other keys.

    The head's PyConv levels keep the authors' ``conv2_{i}`` names here; they are renamed with
    the backbone's (:func:`remap_original_keys`) against the model's names.
    """
    match = _SEQUENTIAL.match(key)
    if match is None or match['seq'] not in _HEAD_MODULES:
        return None
    module = _HEAD_MODULES[match['seq']].get(int(match['index']))
    return None if module is None else f'{module}.{match["rest"]}'


def split_original(
    state_dict: Mapping[str, torch.Tensor]
) -> Tuple['OrderedDict[str, torch.Tensor]', 'OrderedDict[str, torch.Tensor]', List[str]]:
    """(backbone tensors under the authors' classifier names, head tensors under mmseg's names
    (pyramid levels still ``conv2_{i}``), keys that belong nowhere)."""
    backbone, head, unknown = OrderedDict(), OrderedDict(), []
    for key, value in state_dict.items():
        if key.startswith('layer0.'):
            index, _, rest = key[len('layer0.'):].partition('.')
            if index in _STEM:
                backbone[f'{_STEM[index]}.{rest}'] = value
            else:
                unknown.append(key)
        elif _STAGES.match(key):
            backbone[key] = value
        else:
            new = _head_key(key)
            if new is None:
                unknown.append(key)
            else:
                head[new] = value
    return backbone, head, unknown


def _resnet_depths() -> Dict[Tuple[int, ...], int]:
    """Blocks per stage -> depth of mmseg's bottleneck ResNets (from its arch table)."""
    from mmseg.models.backbones.resnet import Bottleneck, ResNet
    return {tuple(blocks): depth for depth, (block, blocks) in ResNet.arch_settings.items()
            if block is Bottleneck}


def infer_segnet_arch(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """Backbone family and depth, and the class count, of an original PyConvSegNet checkpoint."""
    if 'pyconvhead.merge_context.features.0.weight' not in state_dict:
        raise ConversionError(
            'not a PyConvSegNet checkpoint: no pyconvhead.merge_context.features.0.weight (an '
            "ImageNet checkpoint of the authors' classifiers converts with "
            'tools/convert/pyconv_to_mmpretrain.py)')
    if 'cls.1.weight' not in state_dict:
        raise ConversionError('the checkpoint has no classifier cls.1.weight')
    num_classes = state_dict['cls.1.weight'].shape[0]
    backbone, _, _ = split_original(state_dict)
    if is_original_layout(backbone):
        try:
            arch = infer_original_arch(backbone)
        except ConversionError as e:
            raise ConversionError(f'its backbone is not a PyConv network the configs know: {e}')
        return dict(family=arch['family'], depth=arch['depth'], num_classes=num_classes)
    counts = blocks_per_stage(backbone)
    depths = _resnet_depths()
    if counts not in depths or 'layer1.0.conv3.weight' not in backbone:
        raise ConversionError(
            f'its backbone (blocks per stage {counts}, no pyramid levels) is neither a PyConv '
            'network nor a bottleneck ResNet (' + ', '.join(
                f'ResNet-{d}: {b}' for b, d in depths.items()) + ')')
    return dict(family='ResNet', depth=depths[counts], num_classes=num_classes)


def find_config(arch: Mapping[str, object]) -> str:
    """The config of configs/pyconvseg/ for a PyConvSegNet with this backbone, from the
    metafile (the entry whose backbone is ``<family>-<depth>`` and whose head is PyConvPH)."""
    import yaml

    from ..hub import find_model_index
    found = find_model_index()
    if found is None:
        raise ConversionError('this installation carries no configs (no model-index.yml): '
                              'pass the config to convert for (--config)')
    root = found[1]
    with open(osp.join(root, 'configs', 'pyconvseg', 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    backbone = f'{arch["family"]}-{arch["depth"]}'
    for model in models:
        meta = model.get('Metadata', {})
        if meta.get('Backbone') == backbone and meta.get('Decode Head') == 'PyConvPH':
            return osp.join(root, model['Config'])
    raise ConversionError(f'configs/pyconvseg/metafile.yml lists no PyConvSegNet with a '
                          f'{backbone} backbone: pass the config to convert for (--config)')


def build_target(config: str, num_classes: int):
    """The config's model on the meta device (shapes only) and its test dataset's metainfo."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.pop('pretrained', None)
    cfg.model.backbone.init_cfg = None
    expected = cfg.model.decode_head.num_classes
    if expected != num_classes:
        raise ConversionError(
            f'the checkpoint classifies {num_classes} classes (cls.1.weight) but {config} has '
            f'num_classes={expected}: pass a config with num_classes={num_classes} (--config), '
            'or override it there')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    metainfo = None
    dataset_type = cfg.get('test_dataloader', {}).get('dataset', {}).get('type')
    dataset_cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else None
    meta = getattr(dataset_cls, 'METAINFO', None)
    if meta and len(meta.get('classes', ())) == num_classes:
        metainfo = dict(meta)
    return model, metainfo


def convert_segnet(state_dict: Mapping[str, torch.Tensor],
                   targets: Mapping[str, torch.Size]) -> 'OrderedDict[str, torch.Tensor]':
    """The original state dict under the target model's names, checked against its shapes.

    Args:
        state_dict: the original network's tensors (see
            :func:`~mmpyconv.convert.layout.extract_state_dict`).
        targets: name -> shape of every tensor of the mmseg model.

    Raises:
        ConversionError: unknown, missing or mis-shaped tensors, listed.
    """
    backbone, head, unknown = split_original(state_dict)
    source = OrderedDict(('backbone.' + k, v) for k, v in backbone.items())
    source.update(head)
    remap_original_keys(source, targets)
    misfit = Misfit.compare(source, targets, unexpected=unknown)
    if not misfit.exact:
        raise ConversionError(f'the checkpoint does not fit the model: {misfit.describe()}')
    return OrderedDict((k, source[k] if k in source else torch.tensor(0, dtype=torch.long))
                       for k in targets)


def convert_segnet_file(src: str, dst: str, config: Optional[str] = None) -> Dict[str, object]:
    """Read ``src``, convert it for ``config`` (default: from the checkpoint), save ``dst``.

    Returns:
        What was converted: ``family``, ``depth``, ``num_classes``, ``config``, ``tensors``.
    """
    checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    state_dict = extract_state_dict(checkpoint)
    arch = infer_segnet_arch(state_dict)
    config = config or find_config(arch)
    if not osp.isfile(config):
        raise ConversionError(f'config {config} does not exist')
    model, metainfo = build_target(config, arch['num_classes'])
    targets = OrderedDict((k, v.shape) for k, v in model.state_dict().items())
    converted = convert_segnet(state_dict, targets)
    meta = dict(converted_from=osp.basename(src), config=osp.basename(config),
                backbone=f'{arch["family"]}-{arch["depth"]}')
    if metainfo is not None:
        meta['dataset_meta'] = metainfo
    torch.save(dict(meta=meta, state_dict=converted), dst)
    return dict(arch, config=config, tensors=len(converted))
