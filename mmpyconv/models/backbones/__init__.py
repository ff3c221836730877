from .original_layout import is_original_layout, original_layout_pre_hook, remap_original_keys
from .pyconv_blocks import PyConvBasicBlock, PyConvBottleneck
from .pyconv_resnet import PyConvHGResNet, PyConvResNet
from .pyconv_resnet3d import PyConvHGResNet3d, PyConvResNet3d, inflate_state_dict
from .toolboxes import register_with_mmaction

# The PyConv backbone families, each with its arch table (``arch_settings``); the video ones
# share those tables.
FAMILIES = (PyConvResNet, PyConvHGResNet)
VIDEO_FAMILIES = (PyConvResNet3d, PyConvHGResNet3d)

__all__ = [
    'FAMILIES', 'VIDEO_FAMILIES', 'PyConvResNet', 'PyConvHGResNet', 'PyConvResNet3d',
    'PyConvHGResNet3d', 'PyConvBasicBlock', 'PyConvBottleneck', 'is_original_layout',
    'remap_original_keys', 'original_layout_pre_hook', 'inflate_state_dict',
    'register_with_mmaction'
]

register_with_mmaction()
