"""The PyConv operator: its plan (level arithmetic), the layer, its implementations, costs."""
from .cost import format_cost, pyconv_cost
from .dispatch import IMPL_NAMES, get_default_impl, pyconv_impl, set_default_impl
from .plan import PyConvPlan, default_groups, default_split
from .pyconv import PyConv2d, PyConv3d

__all__ = [
    'PyConv2d', 'PyConv3d', 'PyConvPlan', 'default_split', 'default_groups', 'pyconv_cost',
    'format_cost', 'pyconv_impl', 'set_default_impl', 'get_default_impl', 'IMPL_NAMES'
]
