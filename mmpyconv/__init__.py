"""mmpyconv: Pyramidal Convolution for OpenMMLab 2.x.

Importing it registers the PyConv operator and backbones in mmengine's root ``MODELS`` registry,
and :class:`ExactResumeHook` in its root ``HOOKS`` registry, where every toolbox's registry
finds them; it never imports a toolbox (mmpretrain, mmdet, mmseg, mmaction2) nor the tools'
runner code (:mod:`mmpyconv.runner`).
"""
from .compat import patch_mmaction_drn
from .version import __version__

patch_mmaction_drn()

from .engine import ExactResumeHook  # noqa: E402
from .models import PyConvHGResNet, PyConvHGResNet3d, PyConvResNet, PyConvResNet3d  # noqa: E402
from .ops import PyConv2d, PyConv3d  # noqa: E402

__all__ = [
    '__version__', 'PyConv2d', 'PyConv3d', 'PyConvResNet', 'PyConvHGResNet', 'PyConvResNet3d',
    'PyConvHGResNet3d', 'ExactResumeHook'
]

# Lets mmpretrain.get_model find the metafiles' models (registered once mmpretrain is imported).
from .hub import register_with_mmpretrain  # noqa: E402

register_with_mmpretrain()
