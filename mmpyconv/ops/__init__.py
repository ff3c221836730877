from .pyconv import PyConv2d, PyConvPlan, default_split, format_cost, pyconv_cost

__all__ = ['PyConv2d', 'PyConvPlan', 'default_split', 'pyconv_cost', 'format_cost']
