"""mmdet dense heads. Imports mmdet, so ``import mmpyconv`` does not load this package."""
from ...compat import patch_mmdet_ssd_head
from .pyconv_ssd_head import PyConvSSDHead, ssd_pyconv_kernels

patch_mmdet_ssd_head()  # mmdet 3.3.0's SSD heads cannot predict otherwise (see mmpyconv.compat)

__all__ = ['PyConvSSDHead', 'ssd_pyconv_kernels']
