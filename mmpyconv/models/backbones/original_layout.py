"""The PyConv authors' checkpoint layout (github.com/iduta/pyconv), read by the backbones.

The authors' ``PyConvResNet`` / ``PyConvHGResNet`` name their tensors as mmpyconv's backbones
do, except for the pyramid levels and some shortcuts:

==================================================  ==========================================
original key                                        mmpyconv key
==================================================  ==========================================
``conv1``, ``bn1``                                  same (stem)
``layer{s}.{j}.conv{1,2,3}``, ``bn{1,2,3}``         same (plain convs and norms of a block)
``<pyconv>.conv2_{i}`` (level i of 2 to 4 levels)   ``<pyconv>.levels.{i-1}``
``<pyconv>`` (a one-level PyConv is a plain conv)   ``<pyconv>.levels.0``
``layer{s}.0.downsample.{1,2}`` (after max-pool 0)  same: max-pool 0, 1x1 conv 1, norm 2
``layer{s}.0.downsample.{0,1}`` (not strided)       our shortcut's conv and norm, in order
==================================================  ==========================================

``<pyconv>`` is ``conv2`` of a bottleneck (depth 50/101/152) and ``conv1`` of the authors'
basic block (depth 18/34). This module only renames keys, against the names of the module that
loads them; it knows nothing of architectures (:mod:`mmpyconv.convert` converts whole
checkpoints). The backbones register :func:`original_layout_pre_hook`, so mmengine's
``init_cfg=dict(type='Pretrained', checkpoint=...)``, ``load_checkpoint`` and
``load_state_dict`` read the authors' files as they are.
"""
import re
import warnings
from typing import Dict, Iterable, Mapping, MutableMapping, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import WEIGHT_INITIALIZERS

__all__ = [
    'is_original_layout', 'remap_original_keys', 'original_layout_pre_hook',
    'PyConvPretrainedInit'
]

_LEVEL = re.compile(r'^(?P<pyconv>.+)\.conv2_(?P<level>\d+)\.(?P<param>[^.]+)$')
_SHORTCUT = re.compile(r'^(?P<shortcut>.+\.downsample)\.(?P<index>\d+)\.(?P<rest>.+)$')


def is_original_layout(keys: Iterable[str]) -> bool:
    """Whether the keys hold the authors' pyramid levels (``...conv2_1.weight`` and so on)."""
    return any(_LEVEL.match(key) for key in keys)


def _target_key(rel: str, targets: Mapping[str, object]) -> Optional[str]:
    """Our name of one original key (relative to the module), or None to leave it as it is."""
    if rel in targets:
        return None
    match = _LEVEL.match(rel)
    if match:
        candidate = f'{match["pyconv"]}.levels.{int(match["level"]) - 1}.{match["param"]}'
        return candidate if candidate in targets else None
    head, _, param = rel.rpartition('.')
    candidate = f'{head}.levels.0.{param}'
    return candidate if head and candidate in targets else None


def _shortcut_renames(rels: Iterable[str], targets: Iterable[str]) -> Dict[str, str]:
    """Renames that align a shortcut's layers when the two layouts index them differently.

    The original puts the max-pool (no parameters) at index 0 only when the block is strided;
    mmpyconv also keeps it for a dilated stage. Layers with parameters are matched in order.
    """

    def indices(keys):
        found: Dict[str, set] = {}
        for key in keys:
            match = _SHORTCUT.match(key)
            if match:
                found.setdefault(match['shortcut'], set()).add(int(match['index']))
        return {k: sorted(v) for k, v in found.items()}

    source, target = indices(rels), indices(targets)
    renames = {}
    for shortcut, src in source.items():
        dst = target.get(shortcut)
        if dst is None or dst == src or len(dst) != len(src):
            continue
        order = dict(zip(src, dst))
        for rel in rels:
            match = _SHORTCUT.match(rel)
            if match and match['shortcut'] == shortcut:
                renames[rel] = f'{shortcut}.{order[int(match["index"])]}.{match["rest"]}'
    return renames


def remap_original_keys(state_dict: MutableMapping[str, torch.Tensor],
                        target_keys: Iterable[str],
                        prefix: str = '') -> Dict[str, str]:
    """Rename, in place, the original-layout keys under ``prefix`` to mmpyconv's names.

    Only keys that are not already names of the target (``target_keys``, relative to
    ``prefix``) and whose mmpyconv name is one are renamed, so a state dict already in
    mmpyconv's layout is left unchanged.

    Returns:
        ``{old key: new key}`` of what was renamed.
    """
    targets = dict.fromkeys(target_keys)
    rels = [key[len(prefix):] for key in list(state_dict) if key.startswith(prefix)]
    renames = {}
    for rel in rels:
        new = _target_key(rel, targets)
        if new is not None:
            renames[rel] = new
    renames.update(_shortcut_renames([r for r in rels if r not in renames], targets))
    # Pop everything first: a shortcut rename may target a name another one frees.
    moved = {new: state_dict.pop(prefix + old) for old, new in renames.items()}
    state_dict.update({prefix + new: value for new, value in moved.items()})
    return {prefix + old: prefix + new for old, new in renames.items()}


def original_layout_pre_hook(module: nn.Module, state_dict: MutableMapping[str, torch.Tensor],
                             prefix: str, *args) -> None:
    """Load-state-dict pre-hook that reads the authors' layout into a PyConv backbone.

    Register it with ``module.register_load_state_dict_pre_hook(original_layout_pre_hook)``.
    torch and mmengine call it on the module before its children load, with the whole (copied)
    state dict, so renaming here lets ``load_state_dict``, ``load_checkpoint`` and mmengine's
    ``Pretrained`` init read original checkpoints. State dicts in mmpyconv's layout pass as they
    are.
    """
    if not any(key.startswith(prefix) for key in state_dict):
        return
    renames = remap_original_keys(state_dict, module.state_dict(keep_vars=True), prefix)
    if renames:
        print_log(f'{type(module).__name__}: read {len(renames)} tensors from the PyConv '
                  "authors' layout (e.g. conv2.conv2_1 -> conv2.levels.0)", logger='current')


@WEIGHT_INITIALIZERS.register_module(name='PyConvPretrained')
class PyConvPretrainedInit(PretrainedInit):
    """Deprecated: ``init_cfg=dict(type='Pretrained', checkpoint=...)`` does the same.

    Kept for one release so that configs written for mmpyconv 0.1 still load; it warns and
    then acts as mmengine's ``Pretrained`` (the backbones read the authors' layout themselves,
    through :func:`original_layout_pre_hook`).
    """

    def __init__(self, **kwargs):
        warnings.warn(
            "init_cfg type='PyConvPretrained' is deprecated and will be removed: write "
            "type='Pretrained' (the PyConv backbones read the authors' checkpoints "
            'themselves)', FutureWarning)
        super().__init__(**kwargs)
