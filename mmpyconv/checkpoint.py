"""The PyConv authors' ImageNet checkpoints (github.com/iduta/pyconv) in mmpyconv's layout.

The authors' checkpoints are state dicts of their ``PyConvResNet`` / ``PyConvHGResNet`` classes:

==================================================  ==========================================
original key                                        mmpyconv key
==================================================  ==========================================
``conv1``, ``bn1``                                  same (stem)
``layer{s}.{j}.conv{1,2,3}``, ``bn{1,2,3}``         same (plain convs and norms of a block)
``<pyconv>.conv2_{i}`` (level i of 2 to 4 levels)   ``<pyconv>.levels.{i-1}``
``<pyconv>`` (a one-level PyConv is a plain conv)   ``<pyconv>.levels.0``
``layer{s}.0.downsample.{1,2}`` (after max-pool 0)  same: max-pool 0, 1x1 conv 1, norm 2
``layer{s}.0.downsample.{0,1}`` (not strided)       our shortcut's conv and norm, in order
``fc``                                              ``head.fc`` of an mmpretrain classifier
==================================================  ==========================================

``<pyconv>`` is ``conv2`` of a bottleneck (depth 50/101/152) and ``conv1`` of the basic block
``PyConvBasicBlock2`` (depth 18/34). A checkpoint saved by the authors' training script wraps
the state dict as ``{'state_dict': ...}`` with DataParallel's ``module.`` prefix; both are read.

Three ways to use one:

* ``tools/convert/pyconv_to_mmpretrain.py`` writes an mmpretrain ``ImageClassifier`` checkpoint
  (:func:`convert_original_classifier`: every key accounted for, every shape checked);
* ``init_cfg=dict(type='PyConvPretrained', checkpoint=...)`` loads it into a backbone
  (:class:`PyConvPretrainedInit`, registered in mmengine's ``WEIGHT_INITIALIZERS``);
* :func:`original_layout_pre_hook`, registered on the backbone as a load-state-dict pre-hook,
  lets mmengine's plain ``Pretrained`` init (and any ``load_state_dict``) read it too.
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

__all__ = [
    'OriginalCheckpointError', 'extract_state_dict', 'is_original_layout', 'remap_original_keys',
    'original_layout_pre_hook', 'infer_original_arch', 'convert_original_classifier',
    'PyConvPretrainedInit', 'fit_problems'
]

_LEVEL = re.compile(r'^(?P<pyconv>.+)\.conv2_(?P<level>\d+)\.(?P<param>[^.]+)$')
_SHORTCUT = re.compile(r'^(?P<shortcut>.+\.downsample)\.(?P<index>\d+)\.(?P<rest>.+)$')
_BLOCK = re.compile(r'^layer(?P<stage>[1-4])\.(?P<block>\d+)\.')

# (block kind, blocks per stage) -> depth, as in the authors' model constructors.
_DEPTHS = {
    ('basic', (2, 2, 2, 2)): 18,
    ('basic', (3, 4, 6, 3)): 34,
    ('bottleneck', (3, 4, 6, 3)): 50,
    ('bottleneck', (3, 4, 23, 3)): 101,
    ('bottleneck', (3, 8, 36, 3)): 152,
}
_FAMILY_BY_EXPANSION = {4: 'PyConvResNet', 2: 'PyConvHGResNet'}


class OriginalCheckpointError(ValueError):
    """A checkpoint does not match the original PyConv layout or the architecture it implies."""


def extract_state_dict(checkpoint: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """The tensors of a loaded checkpoint, without wrappers.

    Reads a plain state dict, ``{'state_dict': ...}`` (mmengine, the authors' training script) or
    ``{'model': ...}``, and drops DataParallel's ``module.`` prefix.
    """
    state_dict = checkpoint
    for key in ('state_dict', 'model'):
        inner = state_dict.get(key) if isinstance(state_dict, Mapping) else None
        if isinstance(inner, Mapping):
            state_dict = inner
            break
    if not isinstance(state_dict, Mapping):
        raise OriginalCheckpointError(
            f'expected a state dict (a mapping of names to tensors), got {type(state_dict)}')
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state_dict.items())


def is_original_layout(state_dict: Iterable[str]) -> bool:
    """Whether the keys hold the authors' pyramid levels (``...conv2_1.weight`` and so on)."""
    return any(_LEVEL.match(key) for key in state_dict)


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


def infer_original_arch(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """Family, depth and classes of an original checkpoint, read from its keys and shapes.

    Returns:
        ``dict(family='PyConvResNet' | 'PyConvHGResNet', depth=int, num_classes=int | None)``.
    """
    blocks: Dict[int, set] = {}
    for key in state_dict:
        match = _BLOCK.match(key)
        if match:
            blocks.setdefault(int(match['stage']), set()).add(int(match['block']))
    if sorted(blocks) != [1, 2, 3, 4] or 'conv1.weight' not in state_dict:
        raise OriginalCheckpointError(
            'not a PyConvResNet/PyConvHGResNet checkpoint: expected a stem conv1 and stages '
            f'layer1 to layer4, found stages {sorted(blocks) or "none"}')
    counts = tuple(len(blocks[s]) for s in (1, 2, 3, 4))
    bottleneck = 'layer1.0.conv3.weight' in state_dict
    kind = 'bottleneck' if bottleneck else 'basic'
    depth = _DEPTHS.get((kind, counts))
    if depth is None:
        raise OriginalCheckpointError(
            f'{kind} blocks per stage {counts} match no PyConv network; known: '
            + ', '.join(f'{d} ({k}, {c})' for (k, c), d in _DEPTHS.items()))
    if not is_original_layout(state_dict):
        raise OriginalCheckpointError(
            'no pyramid levels (keys like layer1.0.conv2.conv2_1.weight) in this checkpoint: it '
            "is not a PyConv network in the authors' layout (a plain ResNet checkpoint belongs to "
            "mmpretrain's ResNet; a checkpoint of mmpyconv's own layout needs no conversion)")
    family = 'PyConvResNet'
    if bottleneck:
        expansion, remainder = divmod(state_dict['layer1.0.conv3.weight'].shape[0],
                                      state_dict['layer1.0.conv1.weight'].shape[0])
        if remainder or expansion not in _FAMILY_BY_EXPANSION:
            raise OriginalCheckpointError(
                f'bottleneck expansion {expansion} (layer1.0.conv3 / layer1.0.conv1 widths) '
                'matches neither PyConvResNet (4) nor PyConvHGResNet (2)')
        family = _FAMILY_BY_EXPANSION[expansion]
    fc = state_dict.get('fc.weight')
    return dict(family=family, depth=depth, num_classes=None if fc is None else fc.shape[0])


def _classifier_targets(family: str, depth: int,
                        num_classes: Optional[int]) -> 'OrderedDict[str, torch.Size]':
    """Names and shapes of an mmpretrain classifier's tensors with this backbone."""
    from .models import PyConvHGResNet, PyConvResNet
    cls = {'PyConvResNet': PyConvResNet, 'PyConvHGResNet': PyConvHGResNet}[family]
    with torch.device('meta'):
        backbone = cls(depth=depth)
    targets = OrderedDict(
        (f'backbone.{k}', v.shape) for k, v in backbone.state_dict(keep_vars=True).items())
    if num_classes is not None:
        width = backbone.stage_channels[-1]
        targets['head.fc.weight'] = torch.Size((num_classes, width))
        targets['head.fc.bias'] = torch.Size((num_classes, ))
    return targets


def _examples(items: List[str], limit: int = 6) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f', ... ({len(items)} in all)' if len(items) > limit else '')


def fit_problems(unexpected: List[str], missing: List[str], mismatched: List[str]) -> List[str]:
    """One sentence per kind of misfit between a checkpoint and a model, with examples."""
    problems = []
    if unexpected:
        problems.append(f'{len(unexpected)} tensors with no place in the model: '
                        f'{_examples(unexpected)}')
    if missing:
        problems.append(f'{len(missing)} model tensors missing from the checkpoint: '
                        f'{_examples(missing)}')
    if mismatched:
        problems.append(f'{len(mismatched)} tensors of another shape: {_examples(mismatched)}')
    return problems


def convert_original_classifier(
        state_dict: Mapping[str, torch.Tensor],
        family: Optional[str] = None,
        depth: Optional[int] = None) -> Tuple['OrderedDict[str, torch.Tensor]', Dict]:
    """An original classifier's state dict as an mmpretrain ``ImageClassifier`` state dict.

    Backbone tensors go to ``backbone.*`` (pyramid levels renamed), ``fc`` to ``head.fc``.
    Every source tensor must be used and every target tensor filled with the same shape;
    BatchNorm ``num_batches_tracked`` counters, which checkpoints of torch < 0.4.1 lack, are
    filled with 0.

    Args:
        state_dict: the original state dict (see :func:`extract_state_dict`).
        family: 'PyConvResNet' or 'PyConvHGResNet'. Default: read from the checkpoint.
        depth: network depth. Default: read from the checkpoint.

    Returns:
        The converted state dict and the architecture (``family``, ``depth``, ``num_classes``).

    Raises:
        OriginalCheckpointError: unknown, missing or mis-shaped tensors, listed.
    """
    arch = infer_original_arch(state_dict)
    for name, given in (('family', family), ('depth', depth)):
        if given is not None and given != arch[name]:
            raise OriginalCheckpointError(
                f'the checkpoint holds a {arch["family"]}-{arch["depth"]}, not the {name} '
                f'{given!r} asked for')
    targets = _classifier_targets(arch['family'], arch['depth'], arch['num_classes'])

    source = OrderedDict()
    unexpected = []
    for key, value in state_dict.items():
        if key.startswith('fc.'):
            source['head.' + key] = value
        elif key.split('.', 1)[0] in ('conv1', 'bn1') or _BLOCK.match(key):
            source['backbone.' + key] = value
        else:
            unexpected.append(key)
    remap_original_keys(source, [k[len('backbone.'):] for k in targets if
                                 k.startswith('backbone.')], prefix='backbone.')

    unexpected += [k for k in source if k not in targets]
    missing = [k for k in targets if k not in source and not k.endswith('num_batches_tracked')]
    mismatched = [
        f'{k}: checkpoint {tuple(source[k].shape)} vs {arch["family"]}-{arch["depth"]} '
        f'{tuple(shape)}' for k, shape in targets.items()
        if k in source and source[k].shape != shape
    ]
    problems = fit_problems(unexpected, missing, mismatched)
    if problems:
        raise OriginalCheckpointError(
            f'the checkpoint does not fit {arch["family"]}-{arch["depth"]} '
            f'(inferred from its keys): ' + '; '.join(problems))

    converted = OrderedDict()
    for key in targets:
        if key in source:
            converted[key] = source[key]
        else:
            converted[key] = torch.tensor(0, dtype=torch.long)
    return converted, arch


@WEIGHT_INITIALIZERS.register_module(name='PyConvPretrained')
class PyConvPretrainedInit(PretrainedInit):
    """mmengine's ``Pretrained`` init that also reads the PyConv authors' checkpoints.

    Use it where ``Pretrained`` would go, e.g. in a backbone config::

        init_cfg=dict(type='PyConvPretrained', checkpoint='pyconvresnet50.pth')

    A checkpoint in mmpyconv's layout loads as with ``Pretrained``; one in the authors' layout
    has its keys renamed first (:func:`remap_original_keys`). ``prefix`` selects a sub-module of
    the checkpoint, as with ``Pretrained``. Keys that fit nowhere are reported by mmengine's
    loader (e.g. the classifier ``fc`` when loading into a backbone).

    Args:
        checkpoint (str): Path or URL of the checkpoint.
        prefix (str, optional): Load only the keys under this prefix (stripped). Default: None.
        map_location (str): Where to map the tensors. Default: 'cpu'.
    """

    def __call__(self, module: nn.Module) -> None:
        from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict

        print_log(f'load model from: {self.checkpoint}', logger='current')
        state_dict = extract_state_dict(
            _load_checkpoint(self.checkpoint, map_location=self.map_location))
        if self.prefix is not None:
            prefix = self.prefix if self.prefix.endswith('.') else self.prefix + '.'
            state_dict = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                                     if k.startswith(prefix))
            if not state_dict:
                raise KeyError(f'no key of {self.checkpoint} starts with {prefix!r}')
        renames = remap_original_keys(state_dict, module.state_dict(keep_vars=True))
        if renames:
            print_log(f"read {len(renames)} tensors from the PyConv authors' layout",
                      logger='current')
        load_state_dict(module, state_dict, strict=False, logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())
