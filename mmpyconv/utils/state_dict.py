"""The tensors of a loaded checkpoint, whatever wraps them."""
from collections import OrderedDict
from typing import Mapping, Optional

__all__ = ['unwrap_state_dict']


def unwrap_state_dict(checkpoint: object) -> Optional['OrderedDict']:
    """The state dict of a loaded checkpoint, or None when there is no mapping of tensors.

    Reads a plain state dict, ``{'state_dict': ...}`` (mmengine, the authors' training scripts)
    or ``{'model': ...}``, and drops DataParallel's ``module.`` prefix.
    """
    state_dict = checkpoint
    for key in ('state_dict', 'model'):
        inner = state_dict.get(key) if isinstance(state_dict, Mapping) else None
        if isinstance(inner, Mapping):
            state_dict = inner
            break
    if not isinstance(state_dict, Mapping):
        return None
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state_dict.items())
