"""mmpyconv's models in mmpretrain's model hub: ``mmpretrain.get_model('<metafile name>')``.

mmpretrain finds models by name in ``ModelHub`` (``mmpretrain/apis/model.py``), which other
packages fill with ``ModelHub.register_model_index(model_index, config_prefix)``, as mim reads an
OpenMMLab package's ``.mim/model-index.yml``. ``import mmpyconv`` calls
:func:`register_with_mmpretrain`, which must not import mmpretrain (nor any other toolbox), so
the registration waits for mmpretrain: done at once when ``mmpretrain.apis.model`` is already
loaded, otherwise right after that module has run (``import mmpretrain`` loads it), by
:func:`mmpyconv.utils.import_hook.when_imported`.
"""
import logging
import os.path as osp
from types import ModuleType
from typing import Any, List, Optional, Tuple

from mmengine.logging import print_log

from .utils.import_hook import when_imported

__all__ = ['find_model_index', 'register_with_mmpretrain']

_MODEL_MODULE = 'mmpretrain.apis.model'
_PACKAGE_DIR = osp.dirname(osp.abspath(__file__))


def find_model_index() -> Optional[Tuple[str, str]]:
    """This installation's ``model-index.yml`` and the prefix of the config paths it lists.

    An installed wheel carries it in ``mmpyconv/.mim/`` (setup.py copies it there with
    ``configs/`` and ``tools/``, where mim looks); a source or editable checkout has it at the
    repository root, next to ``setup.py`` and ``configs/``.

    Returns:
        tuple[str, str] | None: ``(model_index_path, config_prefix)``, or None when neither
        exists (e.g. a wheel built without them).
    """
    installed = osp.join(_PACKAGE_DIR, '.mim')
    if osp.isfile(osp.join(installed, 'model-index.yml')):
        return osp.join(installed, 'model-index.yml'), installed
    # Beside setup.py only: a wheel's parent folder is site-packages, whose files are not ours.
    checkout = osp.dirname(_PACKAGE_DIR)
    if osp.isfile(osp.join(checkout, 'setup.py')) and osp.isfile(
            osp.join(checkout, 'model-index.yml')):
        return osp.join(checkout, 'model-index.yml'), checkout
    return None


def _model_names(model_index: str) -> List[str]:
    from modelindex.load_model_index import load  # mmpretrain's dependency, as ModelHub reads
    return [model.name.lower() for model in load(model_index).models]


def _register(model_hub: Any, model_index: str, config_prefix: str) -> None:
    """Register the models once; a second call (or a second import) finds them and returns.

    ``ModelHub.register_model_index`` raises on a name it already holds, after registering the
    names before it, so the names are checked first.
    """
    names = _model_names(model_index)
    known = [name for name in names if model_hub.has(name)]
    if len(known) == len(names):
        return
    if known:
        raise ValueError(
            f'mmpretrain already knows the models {known} of {model_index} from another model '
            'index; rename them in one of the metafiles')
    model_hub.register_model_index(model_index, config_prefix=config_prefix)


def _register_or_warn(model_module: ModuleType, model_index: str, config_prefix: str) -> bool:
    # A failure here must not break `import mmpyconv` or `import mmpretrain`: get_model('<our
    # name>') then reports an unknown model, and this warning says why.
    try:
        _register(model_module.ModelHub, model_index, config_prefix)
    except Exception as e:  # the metafiles' parser and ModelHub raise various types
        print_log(f'mmpyconv could not register its models ({model_index}) with mmpretrain\'s '
                  f'ModelHub, so mmpretrain.get_model will not find them: '
                  f'{type(e).__name__}: {e}', logger='current', level=logging.WARNING)
        return False
    return True


def register_with_mmpretrain() -> bool:
    """Make the models of mmpyconv's metafiles known to ``mmpretrain.get_model``.

    Imports nothing of mmpretrain: registers now if ``mmpretrain.apis.model`` is loaded, else
    when it is. Calling it again does nothing more.

    Returns:
        bool: True when the models are registered or will be at mmpretrain's import; False when
        there is no model index or mmpretrain is not installed (or registering failed, with a
        warning).
    """
    found = find_model_index()
    if found is None:
        return False
    model_index, config_prefix = found
    return when_imported(
        _MODEL_MODULE,
        lambda module: _register_or_warn(module, model_index, config_prefix))
