"""Named workarounds for defects of the released OpenMMLab stack, and nothing else.

Each workaround names the upstream issue it answers, so it can be deleted when a fixed release
is required. None of them imports a toolbox: they look at files on disk.

* ``MMACTION_DRN`` -- mmaction2 1.2.0 ships without ``mmaction/models/localizers/drn/`` although
  ``mmaction/models/localizers/__init__.py`` imports it, so ``import mmaction.models`` fails with
  ``No module named 'mmaction.models.localizers.drn'`` (open-mmlab/mmaction2#2714). DRN itself is
  a temporal-grounding localizer mmpyconv does not use; a placeholder whose constructor raises
  makes the rest of mmaction2 importable.

Run ``python -m mmpyconv.compat --fix-installed`` (``tools/install.sh`` does) to write the
placeholder package into the installed mmaction2, so that a plain ``import mmaction.models``
works. ``import mmpyconv`` applies the in-memory form (:func:`patch_mmaction_drn`) when the files
are missing, for a user whose mmaction2 was pip-installed by hand.
"""
import argparse
import importlib.util
import os
import sys
import types
from typing import Optional

__all__ = ['MMACTION_DRN_ISSUE', 'patch_mmaction_drn', 'fix_installed_mmaction_drn']

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
