from .backbones import PyConvHGResNet, PyConvHGResNet3d, PyConvResNet, PyConvResNet3d

__all__ = ['PyConvResNet', 'PyConvHGResNet', 'PyConvResNet3d', 'PyConvHGResNet3d']
