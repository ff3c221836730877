# Old name of the config below, kept so that existing commands keep working.
_base_ = './pyconvsegnet_pyconvhgresnet152-d8_4xb4-126k_ade20k-473x473.py'
