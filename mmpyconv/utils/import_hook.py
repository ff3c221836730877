"""Run code right after a module of another package has been imported, without importing it.

``import mmpyconv`` must not import any toolbox, yet some of its set-up belongs in a toolbox's
objects: mmpretrain's ``ModelHub`` (:mod:`mmpyconv.hub`), mmaction2's model registry
(:mod:`mmpyconv.models.backbones.toolboxes`). :func:`when_imported` does that set-up at once
when the module is already loaded, else through a one-shot ``sys.meta_path`` finder that wraps
the module's loader and calls back right after the module has run, then removes itself.
"""
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

__all__ = ['when_imported', 'pending']

Callback = Callable[[ModuleType], Any]


class _CallingLoader:
    """Runs the wrapped loader, then the callback on the module it ran."""

    def __init__(self, loader: Any, callback: Callback) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: ModuleSpec) -> Optional[ModuleType]:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._callback(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, ...: tracebacks and inspect see the real loader's answers.
        return getattr(self._loader, name)


class _OneShotFinder:
    """A ``sys.meta_path`` finder for one module name, used once."""

    def __init__(self, module_name: str, callback: Callback) -> None:
        self.module_name = module_name
        self._callback = callback

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[ModuleSpec]:
        if fullname != self.module_name:
            return None
        self.remove()
        for finder in list(sys.meta_path):  # the search the import system would have made
            find = getattr(finder, 'find_spec', None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if hasattr(spec.loader, 'exec_module'):
            spec.loader = _CallingLoader(spec.loader, self._callback)
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def pending(module_name: str) -> bool:
    """Whether a callback waits for ``module_name``'s import."""
    return any(isinstance(f, _OneShotFinder) and f.module_name == module_name
               for f in sys.meta_path)


def when_imported(module_name: str, callback: Callback) -> Optional[bool]:
    """Call ``callback(module)`` once ``module_name`` has been imported (now if it is).

    One callback per module name: a second call while one waits does nothing.

    Returns:
        The callback's result when it ran now; True when it will run at the import; False
        when the module's top-level package is not installed (nothing will run).
    """
    module = sys.modules.get(module_name)
    if module is not None:
        return callback(module)
    if pending(module_name):
        return True
    if importlib.util.find_spec(module_name.split('.')[0]) is None:  # imports nothing
        return False
    sys.meta_path.insert(0, _OneShotFinder(module_name, callback))
    return True
