"""mmseg decode heads. Imports mmseg, so ``import mmpyconv`` does not load this package."""
from .pyconv_ph import PyConvModule, PyConvPH

__all__ = ['PyConvPH', 'PyConvModule']
