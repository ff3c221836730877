# PyConvSegNet (PyConvResNet-50) on ADE20K: the short name of
# pyconvsegnet_pyconvresnet50-d8_4xb4-126k_ade20k-473x473, the config the READMEs start with.
_base_ = './pyconvsegnet_pyconvresnet50-d8_4xb4-126k_ade20k-473x473.py'
