"""Convert the PyConvSegNet authors' ADE20K checkpoints into mmseg checkpoints.

    python tools/convert/pyconvsegnet_to_mmseg.py SRC.pth DST.pth [--config CONFIG]

The authors' checkpoints (github.com/iduta/pyconvsegnet) hold their ``PyConvSegNet``: a backbone
as ``layer0`` (stem conv, norm) and ``layer1``..``layer4``, the head as ``pyconvhead.*``, the
classifier ``cls`` and the auxiliary head ``aux``. They become an mmseg ``EncoderDecoder``:

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

The network is read from the checkpoint (PyConvResNet, PyConvHGResNet or the plain ResNet
backbone, depth 50/101/152, class count) and the result is checked against the model of the
matching config in ``configs/pyconvseg/`` (or ``--config``): every source tensor must be used,
every model tensor filled with the same shape, or the conversion stops and lists what is wrong.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

import mmpyconv  # noqa: F401  (registers the backbones)
from mmpyconv.checkpoint import (OriginalCheckpointError, extract_state_dict, fit_problems,
                                 infer_original_arch, remap_original_keys)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'pyconvseg')

# Index in the original head's nn.Sequential -> our module (ConvModule / PyConvModule part).
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
_SEQUENTIAL = re.compile(r'^(?P<seq>.+?)\.(?P<index>\d+)\.(?P<rest>.+)$')
_LEVEL = re.compile(r'^conv2_(?P<level>\d+)\.(?P<param>[^.]+)$')
_STAGES = re.compile(r'^layer[1-4]\.')
_RESNET_DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}


class ConversionError(ValueError):
    """The checkpoint does not fit the network it should become; the message lists why."""


def _head_key(key: str) -> Optional[str]:
    """The mmseg name of a head, classifier or auxiliary tensor; None for other keys."""
    match = _SEQUENTIAL.match(key)
    if match is None or match['seq'] not in _HEAD_MODULES:
        return None
    module = _HEAD_MODULES[match['seq']].get(int(match['index']))
    if module is None:
        return None
    level = _LEVEL.match(match['rest'])
    if level:  # a pyramid level of the head's PyConv
        return f'{module}.levels.{int(level["level"]) - 1}.{level["param"]}'
    return f'{module}.{match["rest"]}'


def split_original(state_dict: Mapping[str, torch.Tensor]
                   ) -> Tuple['OrderedDict[str, torch.Tensor]', 'OrderedDict[str, torch.Tensor]',
                              List[str]]:
    """(backbone tensors under the original classifier's names, head tensors under mmseg's
    names, keys that belong nowhere)."""
    backbone, head, unknown = OrderedDict(), OrderedDict(), []
    for key, value in state_dict.items():
        if key.startswith('layer0.'):
            index, _, rest = key[len('layer0.'):].partition('.')
            stem = {'0': 'conv1', '1': 'bn1'}.get(index)
            if stem is None:
                unknown.append(key)
            else:
                backbone[f'{stem}.{rest}'] = value
        elif _STAGES.match(key):
            backbone[key] = value
        else:
            new = _head_key(key)
            if new is None:
                unknown.append(key)
            else:
                head[new] = value
    return backbone, head, unknown


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, object]:
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
    if any(re.search(r'\.conv2_\d+\.', key) for key in backbone):
        try:
            arch = infer_original_arch(backbone)
        except OriginalCheckpointError as e:
            raise ConversionError(f'its backbone is not a PyConv network the configs know: {e}')
        return dict(family=arch['family'], depth=arch['depth'], num_classes=num_classes)
    blocks = {}
    for key in backbone:
        match = re.match(r'^layer([1-4])\.(\d+)\.', key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    counts = tuple(len(blocks.get(s, ())) for s in (1, 2, 3, 4))
    if counts not in _RESNET_DEPTHS or 'layer1.0.conv3.weight' not in backbone:
        raise ConversionError(
            f'its backbone (blocks per stage {counts}, no pyramid levels) is neither a PyConv '
            'network nor a ResNet-50/101/152')
    return dict(family='ResNet', depth=_RESNET_DEPTHS[counts], num_classes=num_classes)


def default_config(arch: Mapping[str, object]) -> str:
    """The config in configs/pyconvseg/ for this backbone."""
    family, depth = str(arch['family']).lower(), arch['depth']
    name = 'ade20k.py' if (family, depth) == ('pyconvresnet', 50) else f'ade20k_{family}{depth}.py'
    return osp.join(CONFIG_DIR, name)


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


def convert(state_dict: Mapping[str, torch.Tensor],
            targets: Mapping[str, torch.Size]) -> 'OrderedDict[str, torch.Tensor]':
    """The original state dict under the target model's names, checked against its shapes.

    Args:
        state_dict: the original network's tensors (see ``extract_state_dict``).
        targets: name -> shape of every tensor of the mmseg model.

    Raises:
        ConversionError: unknown, missing or mis-shaped tensors, listed.
    """
    backbone, head, unknown = split_original(state_dict)
    source = OrderedDict(('backbone.' + k, v) for k, v in backbone.items())
    remap_original_keys(source, [k[len('backbone.'):] for k in targets
                                 if k.startswith('backbone.')], prefix='backbone.')
    source.update(head)
    unexpected = unknown + [k for k in source if k not in targets and k not in unknown]
    missing = [k for k in targets if k not in source and not k.endswith('num_batches_tracked')]
    mismatched = [f'{k}: checkpoint {tuple(source[k].shape)}, model {tuple(shape)}'
                  for k, shape in targets.items() if k in source and source[k].shape != shape]
    problems = fit_problems(unexpected, missing, mismatched)
    if problems:
        raise ConversionError('the checkpoint does not fit the model: ' + '; '.join(problems))
    # BatchNorm counters are absent from checkpoints of some BN implementations (apex SyncBN).
    return OrderedDict((k, source[k] if k in source else torch.tensor(0, dtype=torch.long))
                       for k in targets)


def convert_file(src: str, dst: str, config: Optional[str] = None) -> Dict[str, object]:
    """Read ``src``, convert it for ``config`` (default: from the checkpoint), save ``dst``.

    Returns:
        What was converted: ``family``, ``depth``, ``num_classes``, ``config``, ``tensors``.
    """
    checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    state_dict = extract_state_dict(checkpoint)
    arch = infer_arch(state_dict)
    config = config or default_config(arch)
    if not osp.isfile(config):
        raise ConversionError(f'config {config} does not exist')
    model, metainfo = build_target(config, arch['num_classes'])
    targets = OrderedDict((k, v.shape) for k, v in model.state_dict().items())
    converted = convert(state_dict, targets)
    meta = dict(converted_from=osp.basename(src), config=osp.basename(config),
                backbone=f'{arch["family"]}-{arch["depth"]}')
    if metainfo is not None:
        meta['dataset_meta'] = metainfo
    torch.save(dict(meta=meta, state_dict=converted), dst)
    return dict(arch, config=config, tensors=len(converted))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert an ADE20K checkpoint of the PyConvSegNet authors "
        '(github.com/iduta/pyconvsegnet) into an mmseg checkpoint.')
    parser.add_argument('src', help="the authors' checkpoint (.pth)")
    parser.add_argument('dst', help='the mmseg checkpoint to write (.pth)')
    parser.add_argument(
        '--config', help='mmseg config whose model the checkpoint must fit. Default: the one '
        'in configs/pyconvseg/ for the checkpoint\'s backbone')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        print(f'error: {args.src} does not exist', file=sys.stderr)
        return 2
    try:
        info = convert_file(args.src, args.dst, args.config)
    except (ConversionError, OriginalCheckpointError) as e:
        print(f'error: {args.src}: {e}', file=sys.stderr)
        return 2
    print(f'{args.src}: PyConvSegNet with {info["family"]}-{info["depth"]}, '
          f'{info["num_classes"]} classes -> {args.dst} ({info["tensors"]} tensors, fits '
          f'{osp.relpath(info["config"])})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
