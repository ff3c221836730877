from .pyconv_resnet import PyConvBasicBlock, PyConvBottleneck, PyConvHGResNet, PyConvResNet

__all__ = ['PyConvResNet', 'PyConvHGResNet', 'PyConvBasicBlock', 'PyConvBottleneck']
