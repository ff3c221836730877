from .backbones import PyConvHGResNet, PyConvResNet

__all__ = ['PyConvResNet', 'PyConvHGResNet']
