from .pyconv import PyConv2d, PyConvPlan, default_split, format_cost, pyconv_cost
from .pyconv_dispatch import get_default_impl, pyconv_impl, set_default_impl

__all__ = [
    'PyConv2d', 'PyConvPlan', 'default_split', 'pyconv_cost', 'format_cost', 'pyconv_impl',
    'set_default_impl', 'get_default_impl'
]
