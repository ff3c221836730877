"""mmseg decode heads. Imports mmseg, so ``import mmpyconv`` does not load this package."""
from .pyconv_ph import PyConvPH

__all__ = ['PyConvPH']
