"""What a PyConv backbone checks before it loads pretrained weights.

A config written for ResNet often carries its checkpoint along when its backbone is swapped for
a PyConv one: mmseg's ``model.pretrained='open-mmlab://resnet50_v1c'``, mmdet's backbone
``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')``. mmengine would load
the few tensors whose names happen to match (40 of 341 for a torchvision ResNet-50), warn, and
train from that half-initialised network. The backbones refuse such a checkpoint instead:

* :func:`model_zoo_reason` at construction, for the model zoos mmengine resolves by name
  (``open-mmlab://``, ``torchvision://``, ...), which hold no PyConv network;
* :func:`check_fit` before loading a file (at ``init_weights``, and in the tools' preflight),
  when less than half of the backbone's pyramid levels (or of its tensors) would be filled.
"""
import logging
import os
from typing import Callable, Mapping, Optional, Set

import torch.nn as nn
from mmengine.logging import print_log

from ...utils.misfit import Misfit
from ...utils.state_dict import unwrap_state_dict
from .original_layout import remap_original_keys

__all__ = ['PRETRAINED_TYPES', 'model_zoo_reason', 'check_fit', 'drop_inherited']

# init_cfg types that load a checkpoint into the module they initialise.
PRETRAINED_TYPES = ('Pretrained', 'PyConvPretrained')
# Model zoos mmengine's CheckpointLoader resolves by a name, and torchvision's download site
# (mmaction2's TSN configs name its ResNet-50 file): none has a PyConv network.
_MODEL_ZOOS = ('open-mmlab://', 'openmmlab://', 'torchvision://', 'mmcls://', 'modelzoo://',
               'https://download.pytorch.org/models/')


def drop_inherited(backbone: str, depth: int) -> str:
    """How to drop a checkpoint inherited from a ResNet config, for this backbone."""
    return ('A checkpoint inherited from a ResNet config is dropped with model.pretrained=None '
            '(mmseg configs; --cfg-options model.pretrained=None) or by giving the backbone its '
            f"own init_cfg, e.g. init_cfg=dict(type='Pretrained', checkpoint="
            f"'{backbone.lower()}{depth}.pth') for the authors' ImageNet weights, or "
            'init_cfg=None to train from scratch (mmdet configs: write the backbone with '
            '_delete_=True)')


# Checkpoint files (path, modification time, size, prefix) that fitted modules of these
# shapes; see check_fit.
_FITTED: Set[tuple] = set()
# Below this share of the backbone's tensors, a checkpoint is another network's.
MIN_FIT = 0.5


def model_zoo_reason(checkpoint: Optional[str], where: str, backbone: str,
                     depth: int) -> Optional[str]:
    """Why ``checkpoint`` (named by ``where``) cannot initialise a PyConv backbone, when it
    names a model zoo that holds none; else None."""
    if not isinstance(checkpoint, str) or not checkpoint.startswith(_MODEL_ZOOS):
        return None
    return (f'{where}={checkpoint!r} is a checkpoint of another network (the model zoos '
            f"mmengine resolves by name, and torchvision's, hold no PyConv network), which "
            f'{backbone} cannot load. {drop_inherited(backbone, depth)}.')


def _load_state_dict(checkpoint: str, prefix: Optional[str]) -> Optional[Mapping]:
    """The tensors a Pretrained init would load, or None when the file cannot be read here
    (mmengine's own loader then reports why, as it always did)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    except Exception:  # noqa: BLE001 -- left to mmengine's loader, which raises the same
        return None
    state = unwrap_state_dict(loaded)
    if state is None:
        return None
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def check_fit(module: nn.Module, checkpoint: str, prefix: Optional[str] = None,
              depth: int = 50, transform: Optional[Callable] = None) -> None:
    """Refuse ``checkpoint`` if it fills less than half of ``module``'s pyramid levels or of
    its tensors; log what does not fit when it fills more but not all. ``transform(state,
    own_shapes)``, if given, changes the loaded tensors in place as the module will when it
    loads them (the video backbones inflate 2D weights), after the authors' keys are renamed.

    The pyramid levels decide: a plain ResNet-50 has a PyConvResNet-50's stem, 1x1 convs, norms
    and shortcuts with the same names and shapes (and its last stage's 3x3 convs are that
    stage's one-level PyConvs), so it fills most tensors but none of the stages' pyramids.

    Raises:
        ValueError: the checkpoint is another network's; says how little fits and what to do.
    """
    own = {k: v.shape for k, v in module.state_dict(keep_vars=True).items()}
    # The tools check in their preflight, then the Runner's model at init_weights: a local
    # file that fitted once fits the same shapes again and need not be read twice.
    key = None
    if os.path.isfile(checkpoint):
        stat = os.stat(checkpoint)
        key = (os.path.abspath(checkpoint), stat.st_mtime_ns, stat.st_size, prefix,
               tuple((k, tuple(v)) for k, v in own.items()))
        if key in _FITTED:
            return
    state = _load_state_dict(checkpoint, prefix)
    if state is None:
        return
    state = dict(state)
    remap_original_keys(state, own)
    if transform is not None:  # what the module's own load pre-hooks do besides the renaming
        transform(state, own)
    misfit = Misfit.compare(state, own)
    if misfit.exact:
        _FITTED.update([key] if key else [])
        return
    name = type(module).__name__
    counted = [k for k in own if not k.endswith('num_batches_tracked')]
    fitting = set(misfit.fitting)
    fit = sum(k in fitting for k in counted)
    pyramid = [k for k in counted if '.levels.' in k]
    pyramid_fit = sum(k in fitting for k in pyramid)
    if fit < MIN_FIT * len(counted) or pyramid_fit < MIN_FIT * len(pyramid):
        hint = ''
        if not prefix and sum(k.startswith('backbone.') for k in state) > len(state) / 2:
            hint = (" Its tensors are a whole model's (backbone.*): add prefix='backbone.' to "
                    'the init_cfg.')
        raise ValueError(
            f'{checkpoint} fills {pyramid_fit} of the {len(pyramid)} pyramid-level tensors of '
            f'{name} ({fit} of its {len(counted)} tensors): it is the checkpoint of another '
            f'network.{hint} {drop_inherited(name, depth)}.')
    print_log(f'{name}: {checkpoint} fits {fit} of its {len(counted)} tensors; '
              f'{misfit.describe()}', logger='current', level=logging.WARNING)
    _FITTED.update([key] if key else [])
