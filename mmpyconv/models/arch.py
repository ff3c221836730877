"""Networks by name, for the analysis tools: ``pyconvresnet50``, ``pyconvhgresnet101``, and the
ResNets they are compared with (``resnet50``), each as an ImageNet classifier."""
import re
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import FAMILIES

__all__ = ['ARCH_NAME', 'parse_arch_name', 'build_classifier']

# <family><depth>: a PyConv family's lower-case class name, or resnet.
ARCH_NAME = re.compile(r'^(?P<family>[a-z]+?)(?P<depth>\d+)$')
_BY_NAME = {cls.__name__.lower(): cls for cls in FAMILIES}


def parse_arch_name(name: str) -> Tuple[str, int]:
    """``(family, depth)`` of a name such as ``pyconvresnet50``; family is a PyConv family's
    lower-case class name or ``'resnet'``.

    Raises:
        ValueError: for another name, saying which are known.
    """
    match = ARCH_NAME.match(name.lower())
    families = [*_BY_NAME, 'resnet']
    if match is None or match['family'] not in families:
        raise ValueError(f'unknown model {name!r}: use ' + ', '.join(f'{f}<depth>'
                                                                     for f in families))
    family, depth = match['family'], int(match['depth'])
    if family in _BY_NAME and depth not in _BY_NAME[family].arch_settings:
        raise ValueError(f'{name}: {_BY_NAME[family].__name__} has depths '
                         f'{sorted(_BY_NAME[family].arch_settings)}')
    return family, depth


class _Classifier(nn.Module):
    """Backbone (last stage) -> global average pooling -> linear head."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.feat_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.backbone(x)[-1], 1).flatten(1))


def build_classifier(name: str, num_classes: int = 1000, resnet: str = 'torchvision') -> nn.Module:
    """An ImageNet classifier (backbone, global average pooling, linear layer) by name.

    Args:
        name: see :func:`parse_arch_name`.
        num_classes: classes of the linear layer.
        resnet: where ``resnet<depth>`` comes from: ``'torchvision'`` or ``'mmpretrain'``
            (its ResNet backbone under the same head as the PyConv networks).
    """
    family, depth = parse_arch_name(name)
    if family in _BY_NAME:
        return _Classifier(_BY_NAME[family](depth=depth), num_classes)
    if resnet == 'mmpretrain':
        from mmpretrain.models.backbones import ResNet
        return _Classifier(ResNet(depth=depth, out_indices=(3, )), num_classes)
    import torchvision
    builder = getattr(torchvision.models, f'resnet{depth}', None)
    if builder is None:
        raise ValueError(f'torchvision has no resnet{depth}')
    return builder(num_classes=num_classes)
