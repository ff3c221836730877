"""One backbone for every toolbox: the 2D PyConv backbones as mmaction2's heads take them.

mmpretrain's, mmdet's and mmseg's necks and heads index the backbone's outputs, so a backbone
returns a tuple there, even of one stage; mmaction2's ``Recognizer2D`` passes the backbone's
output to its heads as it is, and they take one tensor (mmaction2's own ResNet returns its
single output as a tensor). The backbone cannot tell which toolbox built it (a registry's
``build`` sets no scope when none is set), so the toolbox tells it: mmaction2's model registry
gets its own ``PyConvResNet`` and ``PyConvHGResNet``, the same classes with
``single_output_as_tensor = True``, found before the root registry's by everything mmaction2
builds. ``type='PyConvResNet'`` with ``custom_imports=dict(imports=['mmpyconv'])`` in a config
that inherits mmaction2's TSN config then works as it does in mmpretrain's. The registration
waits for ``mmaction.registry`` to be imported (``import mmpyconv`` imports no toolbox). The
video backbones (:mod:`.pyconv_resnet3d`) return a tensor for one output everywhere.
"""
from types import ModuleType
from typing import Dict, Optional, Type

from ...utils.import_hook import when_imported
from .pyconv_resnet import PyConvHGResNet, PyConvResNet

__all__ = ['MMACTION_CLASSES', 'register_with_mmaction']


def _tensor_output(cls: Type[PyConvResNet]) -> Type[PyConvResNet]:
    return type(cls.__name__, (cls, ), {
        '__doc__': f'{cls.__doc__}\n    (mmaction2: one output is returned as a tensor.)',
        '__module__': __name__,
        'single_output_as_tensor': True
    })


# The classes mmaction2's registry holds under the 2D backbones' names.
MMACTION_CLASSES: Dict[str, type] = {
    cls.__name__: _tensor_output(cls)
    for cls in (PyConvResNet, PyConvHGResNet)
}


def _register(registry_module: ModuleType) -> bool:
    models = registry_module.MODELS
    for name, cls in MMACTION_CLASSES.items():
        # module_dict: this registry's own entries (get() would import mmaction's models).
        if models.module_dict.get(name) is not cls:
            models.register_module(name=name, module=cls, force=True)
    return True


def register_with_mmaction() -> Optional[bool]:
    """Register :data:`MMACTION_CLASSES` in mmaction2's model registry, now or when it is
    imported. Returns False when mmaction2 is not installed."""
    return when_imported('mmaction.registry', _register)
