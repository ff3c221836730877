from .original_layout import is_original_layout, original_layout_pre_hook, remap_original_keys
from .pyconv_blocks import PyConvBasicBlock, PyConvBottleneck
from .pyconv_resnet import PyConvHGResNet, PyConvResNet

# The PyConv backbone families, each with its arch table (``arch_settings``).
FAMILIES = (PyConvResNet, PyConvHGResNet)

__all__ = [
    'FAMILIES', 'PyConvResNet', 'PyConvHGResNet', 'PyConvBasicBlock', 'PyConvBottleneck',
    'is_original_layout', 'remap_original_keys', 'original_layout_pre_hook'
]
