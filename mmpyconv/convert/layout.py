"""Which layout a checkpoint is in, and how to get to mmpyconv's from the others.

Three layouts are known:

* ``'mmpyconv'``: state dicts of mmpyconv's modules and of the toolboxes' models around them
  (what mmengine's Runner saves, and what the converters write);
* ``'pyconv'``: the PyConv authors' ImageNet classifiers (github.com/iduta/pyconv), pyramid
  levels as ``conv2_{i}``; backbones read it as it is, a whole classifier converts with
  ``tools/convert/pyconv_to_mmpretrain.py`` (:mod:`mmpyconv.convert.classifier`);
* ``'pyconvsegnet'``: the PyConvSegNet authors' ADE20K networks (github.com/iduta/pyconvsegnet),
  stem as ``layer0``, head as ``pyconvhead``; converts with
  ``tools/convert/pyconvsegnet_to_mmseg.py`` (:mod:`mmpyconv.convert.segnet`).
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, Tuple

import torch

from ..models.backbones.original_layout import is_original_layout
from ..utils.state_dict import unwrap_state_dict

__all__ = [
    'ConversionError', 'extract_state_dict', 'detect_layout', 'blocks_per_stage', 'CONVERTERS'
]

# The command that converts each foreign layout.
CONVERTERS = {
    'pyconv': 'python tools/convert/pyconv_to_mmpretrain.py',
    'pyconvsegnet': 'python tools/convert/pyconvsegnet_to_mmseg.py',
}
_SEGNET_PREFIXES = ('pyconvhead.', 'layer0.')
_BLOCK = re.compile(r'^layer(?P<stage>[1-4])\.(?P<block>\d+)\.')


class ConversionError(ValueError):
    """A checkpoint does not fit the network it should become; the message says why."""


def extract_state_dict(checkpoint: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """The tensors of a loaded checkpoint, without wrappers (see
    :func:`~mmpyconv.utils.unwrap_state_dict`); a ConversionError when there are none."""
    state_dict = unwrap_state_dict(checkpoint)
    if state_dict is None:
        raise ConversionError(
            f'expected a state dict (a mapping of names to tensors), got {type(checkpoint)}')
    return state_dict


def detect_layout(keys: Iterable[str]) -> str:
    """``'pyconvsegnet'``, ``'pyconv'`` or ``'mmpyconv'`` (see the module docstring)."""
    keys = list(keys)
    if any(key.startswith(_SEGNET_PREFIXES) for key in keys):
        return 'pyconvsegnet'
    if is_original_layout(keys):
        return 'pyconv'
    return 'mmpyconv'


def blocks_per_stage(keys: Iterable[str]) -> Tuple[int, ...]:
    """Residual blocks of each stage ``layer1`` .. ``layer4`` that tensor names show (ResNet
    naming, ``layer{s}.{j}.``: mmpyconv's, torchvision's and both authors' layouts); 0 for a
    stage without tensors."""
    blocks: Dict[int, set] = {}
    for key in keys:
        match = _BLOCK.match(key)
        if match:
            blocks.setdefault(int(match['stage']), set()).add(int(match['block']))
    return tuple(len(blocks.get(stage, ())) for stage in (1, 2, 3, 4))
