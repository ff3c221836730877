"""Named workarounds for defects of the released OpenMMLab stack, and nothing else.

Each workaround names the upstream issue (or the upstream code) it answers, so it can be deleted
when a fixed release is required. None of them imports a toolbox.

* ``MMACTION_DRN`` -- mmaction2 1.2.0 ships without ``mmaction/models/localizers/drn/`` although
  ``mmaction/models/localizers/__init__.py`` imports it, so ``import mmaction.models`` fails with
  ``No module named 'mmaction.models.localizers.drn'`` (open-mmlab/mmaction2#2714). DRN itself is
  a temporal-grounding localizer mmpyconv does not use; a placeholder whose constructor raises
  makes the rest of mmaction2 importable.

  Run ``python -m mmpyconv.compat --fix-installed`` (``tools/install.sh`` does) to write the
  placeholder package into the installed mmaction2, so that a plain ``import mmaction.models``
  works. ``import mmpyconv`` applies the in-memory form (:func:`patch_mmaction_drn`) when the
  files are missing, for a user whose mmaction2 was pip-installed by hand.

* ``MMENGINE_WEIGHTS_ONLY`` -- torch >= 2.6 loads with ``weights_only=True`` by default and
  mmengine 0.10.7 calls ``torch.load`` without the argument, so the checkpoints mmengine itself
  saves (message hub: ``HistoryBuffer`` holding numpy arrays) no longer load: ``--resume``,
  ``load_from`` and testing a saved checkpoint fail with ``Unsupported global: GLOBAL
  mmengine.logging.history_buffer.HistoryBuffer`` (open-mmlab/mmengine#1655).
  :func:`allow_mmengine_checkpoints` adds exactly what those checkpoints pickle to torch's
  weights-only allowlist (``torch.serialization.add_safe_globals``): ``HistoryBuffer``, a few
  numpy reconstructors and dtypes, and a ``getattr`` stand-in that only returns
  ``HistoryBuffer``'s statistics methods. Loading stays weights-only, so a checkpoint that
  pickles anything else is still refused; no environment variable turns the check off. The
  tools call it; Python users call it once before building a Runner.

* ``MMDET_SSD_LOSS_CLS`` -- mmdet 3.3.0's ``BaseDenseHead._predict_by_feat_single`` reads
  ``self.loss_cls``, which ``SSDHead`` never builds (it skips ``AnchorHead.__init__``), so every
  SSD prediction (validation, testing, inference) fails with ``'SSDHead' object has no
  attribute 'loss_cls'`` (open-mmlab/mmdetection#11780, #11063; the fix, PR #11524, is not
  released). :func:`patch_mmdet_ssd_head` gives ``SSDHead`` a class attribute ``loss_cls =
  None``, which that line reads as "no custom class channels", as before the defect. The
  detection heads of :mod:`mmpyconv.models.dense_heads` apply it when they are imported, so it
  reaches mmdet's own SSD configs in a run that imports them.

The CPU distributed launch (mmengine's launchers need an accelerator) is not patched here but
worked around where runs start, :mod:`mmpyconv.runner.launch`, which names the upstream code.
"""
import argparse
import importlib.util
import os
import sys
import types
from typing import List, Optional

__all__ = [
    'MMACTION_DRN_ISSUE', 'patch_mmaction_drn', 'fix_installed_mmaction_drn',
    'MMDET_SSD_LOSS_CLS_ISSUE', 'patch_mmdet_ssd_head', 'MMENGINE_WEIGHTS_ONLY_ISSUE',
    'mmengine_checkpoint_globals', 'allow_mmengine_checkpoints'
]

MMACTION_DRN_ISSUE = 'https://github.com/open-mmlab/mmaction2/issues/2714'
_DRN_MODULES = ('mmaction.models.localizers.drn', 'mmaction.models.localizers.drn.drn')
_DRN_MESSAGE = ('DRN is missing from the released mmaction2 1.2.0 package ({issue}); mmpyconv '
                'installed a placeholder so that the rest of mmaction2 imports. To use DRN, '
                'install mmaction2 from its git sources.')

_PLACEHOLDER_SOURCE = '''\
# Placeholder written by mmpyconv (mmpyconv/compat.py): mmaction2 1.2.0 ships without this
# package although mmaction/models/localizers/__init__.py imports it ({issue}).
from .drn import DRN  # noqa: F401
'''
_PLACEHOLDER_DRN_SOURCE = '''\
# Placeholder written by mmpyconv (mmpyconv/compat.py), see {issue}.


class DRN:
    """Stands in for mmaction2's DRN localizer, missing from the 1.2.0 release."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError({message!r})
'''


class _MissingDRN:
    """In-memory stand-in for mmaction2's DRN localizer (see module docstring)."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_DRN_MESSAGE.format(issue=MMACTION_DRN_ISSUE))


def _mmaction_dir() -> Optional[str]:
    """Directory of the installed ``mmaction`` package, found without importing it."""
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _drn_dir(mmaction_dir: str) -> str:
    return os.path.join(mmaction_dir, 'models', 'localizers', 'drn')


def _drn_missing() -> Optional[str]:
    """The mmaction package directory if it lacks the DRN package, else None."""
    root = _mmaction_dir()
    if root is None or os.path.isfile(os.path.join(_drn_dir(root), '__init__.py')):
        return None
    if not os.path.isdir(os.path.join(root, 'models', 'localizers')):
        return None
    return root


def patch_mmaction_drn() -> bool:
    """Register in-memory placeholder modules for mmaction2's missing DRN package.

    Does nothing when mmaction2 is not installed, when its DRN package exists, or when
    ``mmaction.models`` was already imported. Returns whether placeholders were registered.
    """
    if 'mmaction.models' in sys.modules or _drn_missing() is None:
        return False
    package = types.ModuleType(_DRN_MODULES[0])
    package.__path__ = []
    module = types.ModuleType(_DRN_MODULES[1])
    module.DRN = _MissingDRN
    package.DRN = _MissingDRN
    package.drn = module
    sys.modules.setdefault(_DRN_MODULES[0], package)
    sys.modules.setdefault(_DRN_MODULES[1], module)
    return True


def fix_installed_mmaction_drn() -> Optional[str]:
    """Write the placeholder DRN package into the installed mmaction2 if it is missing.

    Returns the directory written, or None when nothing needed doing.
    """
    root = _drn_missing()
    if root is None:
        return None
    target = _drn_dir(root)
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, 'drn.py'), 'w') as f:
        f.write(_PLACEHOLDER_DRN_SOURCE.format(
            issue=MMACTION_DRN_ISSUE,
            message=_DRN_MESSAGE.format(issue=MMACTION_DRN_ISSUE)))
    with open(os.path.join(target, '__init__.py'), 'w') as f:
        f.write(_PLACEHOLDER_SOURCE.format(issue=MMACTION_DRN_ISSUE))
    return target


MMDET_SSD_LOSS_CLS_ISSUE = 'https://github.com/open-mmlab/mmdetection/issues/11780'


def patch_mmdet_ssd_head() -> bool:
    """Let mmdet's SSDHead (and its subclasses) predict (``MMDET_SSD_LOSS_CLS``).

    Imports mmdet: call it from modules that need mmdet anyway. Returns whether it patched
    (False when SSDHead already has a ``loss_cls``, e.g. a fixed mmdet). Idempotent.
    """
    from mmdet.models.dense_heads import SSDHead
    if hasattr(SSDHead, 'loss_cls'):
        return False
    SSDHead.loss_cls = None
    return True


MMENGINE_WEIGHTS_ONLY_ISSUE = 'https://github.com/open-mmlab/mmengine/issues/1655'


def _history_buffer_statistic(owner: type, name: str):
    """``getattr`` as mmengine checkpoints use it, and nothing more.

    A ``HistoryBuffer`` pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``
    and so on. Allowing the real ``getattr`` would let a crafted file reach any attribute (and
    from there ``eval``); this stand-in, registered under the name ``builtins.getattr``, only
    returns the statistics methods registered on ``HistoryBuffer``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # The built-in statistics, and any registered with HistoryBuffer.register_statistics.
    statistics = {'min', 'max', 'mean', 'current', *HistoryBuffer._statistics_methods}
    if (isinstance(owner, type) and issubclass(owner, HistoryBuffer) and isinstance(name, str)
            and name in statistics):
        return getattr(owner, name)
    import pickle
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a weights-only load: mmpyconv allows '
        'getattr only for the HistoryBuffer statistics that mmengine checkpoints contain')


def mmengine_checkpoint_globals() -> List[object]:
    """What a checkpoint saved by mmengine's Runner pickles beyond torch's default allowlist.

    The message hub keeps ``HistoryBuffer`` objects. Each holds numpy arrays (pickled through
    numpy's ``_reconstruct``, ``ndarray``, ``dtype`` and a dtype class), numpy scalars
    (``scalar``) and its statistics methods (``getattr(HistoryBuffer, 'mean')``, allowed here
    only in that form, see :func:`_history_buffer_statistic`). Tensors, dicts, lists, strings and
    numbers are allowed by torch already.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    # numpy 2 moved the pickled functions to numpy._core; numpy 1 keeps them in numpy.core.
    multiarray = getattr(getattr(np, '_core', None), 'multiarray', None) or np.core.multiarray
    dtype_classes = [
        type(np.dtype(name))
        for name in ('float64', 'float32', 'float16', 'int64', 'int32', 'uint8', 'bool')
    ]
    return [
        HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
        *dtype_classes, (_history_buffer_statistic, 'builtins.getattr')
    ]


def allow_mmengine_checkpoints() -> bool:
    """Let weights-only ``torch.load`` read the checkpoints mmengine's Runner saves.

    Adds :func:`mmengine_checkpoint_globals` to torch's allowlist (see the module docstring,
    ``MMENGINE_WEIGHTS_ONLY``). Returns False when torch has no weights-only allowlist (torch <
    2.4, whose ``torch.load`` does not default to weights-only), True otherwise. Idempotent.
    """
    import torch.serialization as serialization
    add_safe_globals = getattr(serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_checkpoint_globals())
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Apply mmpyconv\'s named workarounds for released OpenMMLab defects.')
    parser.add_argument('--fix-installed', action='store_true',
                        help='write placeholder files into installed packages that need them')
    args = parser.parse_args(argv)
    if not args.fix_installed:
        parser.print_help()
        return 0
    written = fix_installed_mmaction_drn()
    if written:
        print(f'mmaction2: wrote the placeholder DRN package to {written} ({MMACTION_DRN_ISSUE})')
    else:
        print('mmaction2: nothing to fix (not installed, or DRN present)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
