"""mmpyconv: Pyramidal Convolution for OpenMMLab 2.x.

Importing it registers the PyConv operator and backbones in mmengine's root ``MODELS``
registry, where every toolbox's registry finds them, and the ``PyConvPretrained`` weight
initializer (reads the authors' checkpoints) in its ``WEIGHT_INITIALIZERS``; it never imports a
toolbox (mmpretrain, mmdet, mmseg, mmaction2).
"""
from .compat import patch_mmaction_drn
from .version import __version__

patch_mmaction_drn()

from .ops import PyConv2d  # noqa: E402
from .models import PyConvHGResNet, PyConvResNet  # noqa: E402
from . import checkpoint  # noqa: E402,F401  (registers PyConvPretrained)

__all__ = ['__version__', 'PyConv2d', 'PyConvResNet', 'PyConvHGResNet']
