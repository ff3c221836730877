"""The PyConv authors' ImageNet classifiers as mmpretrain ``ImageClassifier`` checkpoints.

The backbone tensors go to ``backbone.*`` (pyramid levels renamed as
:mod:`mmpyconv.models.backbones.original_layout` does), ``fc`` to ``head.fc``. Which network a
checkpoint holds is read from its keys and shapes against the backbones' own arch tables.
"""
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Tuple

import torch

from ..models.backbones import FAMILIES as _FAMILIES
from ..models.backbones import PyConvBottleneck, PyConvResNet
from ..models.backbones.original_layout import is_original_layout, remap_original_keys
from ..utils.misfit import Misfit
from .layout import ConversionError, blocks_per_stage

__all__ = ['FAMILIES', 'infer_original_arch', 'classifier_shapes', 'convert_original_classifier']

FAMILIES = {cls.__name__: cls for cls in _FAMILIES}


def _expansion(family: type) -> int:
    return family.default_expansion or PyConvBottleneck.default_expansion


def _known() -> str:
    return ', '.join(f'{name}-{depth} ({block.__name__}, {blocks})'
                     for name, cls in FAMILIES.items()
                     for depth, (block, blocks) in cls.arch_settings.items())


def infer_original_arch(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """Family, depth and classes of an original checkpoint, read from its keys and shapes.

    Returns:
        ``dict(family='PyConvResNet' | 'PyConvHGResNet', depth=int, num_classes=int | None)``.

    Raises:
        ConversionError: the keys match no PyConv network.
    """
    counts = blocks_per_stage(state_dict)
    if 0 in counts or 'conv1.weight' not in state_dict:
        raise ConversionError(
            'not a PyConvResNet/PyConvHGResNet checkpoint: expected a stem conv1 and stages '
            f'layer1 to layer4 (blocks per stage found: {counts})')
    if not is_original_layout(state_dict):
        raise ConversionError(
            'no pyramid levels (keys like layer1.0.conv2.conv2_1.weight) in this checkpoint: it '
            "is not a PyConv network in the authors' layout (a plain ResNet checkpoint belongs to "
            "mmpretrain's ResNet; a checkpoint of mmpyconv's own layout needs no conversion)")
    bottleneck = 'layer1.0.conv3.weight' in state_dict
    family = PyConvResNet
    if bottleneck:
        expansion, remainder = divmod(state_dict['layer1.0.conv3.weight'].shape[0],
                                      state_dict['layer1.0.conv1.weight'].shape[0])
        by_expansion = {_expansion(cls): cls for cls in FAMILIES.values()}
        if remainder or expansion not in by_expansion:
            raise ConversionError(
                f'bottleneck expansion {expansion} (layer1.0.conv3 / layer1.0.conv1 widths) '
                'matches no PyConv family: ' + ', '.join(
                    f'{cls.__name__} {e}' for e, cls in by_expansion.items()))
        family = by_expansion[expansion]
    depths = [depth for depth, (block, blocks) in family.arch_settings.items()
              if tuple(blocks) == counts and (block is PyConvBottleneck) == bottleneck]
    if not depths:
        kind = 'bottleneck' if bottleneck else 'basic'
        raise ConversionError(f'{kind} blocks per stage {counts} match no PyConv network; '
                              f'known: {_known()}')
    fc = state_dict.get('fc.weight')
    return dict(family=family.__name__, depth=depths[0],
                num_classes=None if fc is None else fc.shape[0])


def classifier_shapes(family: str, depth: int,
                      num_classes: Optional[int]) -> 'OrderedDict[str, torch.Size]':
    """Names and shapes of an mmpretrain ``ImageClassifier``'s tensors with this backbone and a
    linear head (``head.fc``) of ``num_classes`` classes (None: no head)."""
    with torch.device('meta'):
        backbone = FAMILIES[family](depth=depth)
    shapes = OrderedDict(
        (f'backbone.{k}', v.shape) for k, v in backbone.state_dict(keep_vars=True).items())
    if num_classes is not None:
        shapes['head.fc.weight'] = torch.Size((num_classes, backbone.feat_dim))
        shapes['head.fc.bias'] = torch.Size((num_classes, ))
    return shapes


def convert_original_classifier(
        state_dict: Mapping[str, torch.Tensor],
        family: Optional[str] = None,
        depth: Optional[int] = None) -> Tuple['OrderedDict[str, torch.Tensor]', Dict]:
    """An original classifier's state dict as an mmpretrain ``ImageClassifier`` state dict.

    Every source tensor must be used and every target tensor filled with the same shape;
    BatchNorm ``num_batches_tracked`` counters, which checkpoints of torch < 0.4.1 lack, are
    filled with 0.

    Args:
        state_dict: the original state dict (see
            :func:`~mmpyconv.convert.layout.extract_state_dict`).
        family: 'PyConvResNet' or 'PyConvHGResNet'. Default: read from the checkpoint.
        depth: network depth. Default: read from the checkpoint.

    Returns:
        The converted state dict and the architecture (``family``, ``depth``, ``num_classes``).

    Raises:
        ConversionError: unknown, missing or mis-shaped tensors, listed.
    """
    arch = infer_original_arch(state_dict)
    for name, given in (('family', family), ('depth', depth)):
        if given is not None and given != arch[name]:
            raise ConversionError(
                f'the checkpoint holds a {arch["family"]}-{arch["depth"]}, not the {name} '
                f'{given!r} asked for')
    targets = classifier_shapes(arch['family'], arch['depth'], arch['num_classes'])

    source = OrderedDict()
    for key, value in state_dict.items():
        source[('head.' if key.startswith('fc.') else 'backbone.') + key] = value
    remap_original_keys(source, [k[len('backbone.'):] for k in targets
                                 if k.startswith('backbone.')], prefix='backbone.')
    misfit = Misfit.compare(source, targets)
    if not misfit.exact:
        raise ConversionError(
            f'the checkpoint does not fit {arch["family"]}-{arch["depth"]} (inferred from its '
            f'keys): {misfit.describe()}')
    converted = OrderedDict(
        (key, source[key] if key in source else torch.tensor(0, dtype=torch.long))
        for key in targets)
    return converted, arch
