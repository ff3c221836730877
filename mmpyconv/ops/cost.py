"""Parameters and FLOPs of a PyConv beside the plain convolution it replaces."""
from typing import Dict, Sequence, Union

import torch.nn as nn

from .plan import PyConvPlan

__all__ = ['pyconv_cost', 'format_cost']


def pyconv_cost(module_or_plan: Union[nn.Module, PyConvPlan],
                input_size: Sequence[int],
                reference_kernel: int = 3,
                bias: bool = False) -> Dict:
    """Parameters and FLOPs of a PyConv beside a plain ``k x k`` conv of the same shape.

    The plain conv has the same input and output width, stride and dilation, one group, and
    kernel ``reference_kernel`` (3 by default, the conv a PyConv is meant to replace; in 3D,
    ``reference_kernel`` in every axis). FLOPs are multiply-adds of the weights, as mmengine's
    counter reports them.

    Args:
        module_or_plan: a PyConv layer (anything with a ``plan`` and ``levels``) or its
            :class:`~mmpyconv.ops.plan.PyConvPlan`.
        input_size: (height, width), or (time, height, width) in 3D, of the input.
        reference_kernel: kernel size of the plain conv compared with.
        bias: whether to count biases (taken from the module when a module is given).

    Returns:
        ``{'pyconv': {'params', 'flops'}, 'conv': {'params', 'flops', 'kernel'},
        'levels': [{'kernel', 'groups', 'out_channels', 'params', 'flops'}, ...]}``
    """
    if isinstance(module_or_plan, PyConvPlan):
        plan = module_or_plan
    else:
        plan = module_or_plan.plan
        bias = module_or_plan.levels[0].bias is not None
    out_size = plan.output_size(*input_size)
    levels = [
        dict(kernel=plan.kernels[i], groups=plan.groups[i], out_channels=plan.level_channels[i],
             params=plan.level_params(i, bias), flops=plan.level_flops(i, out_size))
        for i in range(plan.num_levels)
    ]
    plain = PyConvPlan.create(plan.in_channels, plan.out_channels, reference_kernel, 1, None,
                              plan.stride, plan.dilation,
                              None if plan.ndim == 2 else reference_kernel)
    return dict(
        pyconv=dict(params=sum(lv['params'] for lv in levels),
                    flops=sum(lv['flops'] for lv in levels)),
        conv=dict(params=plain.level_params(0, bias), flops=plain.flops(input_size),
                  kernel=reference_kernel),
        levels=levels)


def format_cost(cost: Dict) -> str:
    """A small text table of :func:`pyconv_cost`'s result."""
    rows = [('layer', 'kernel', 'groups', 'out', 'params', 'MFLOPs')]
    for i, lv in enumerate(cost['levels']):
        rows.append((f'level {i}', str(lv['kernel']), str(lv['groups']),
                     str(lv['out_channels']), f"{lv['params']:,}", f"{lv['flops'] / 1e6:.2f}"))
    out_total = sum(lv['out_channels'] for lv in cost['levels'])
    rows.append(('PyConv', '-', '-', str(out_total), f"{cost['pyconv']['params']:,}",
                 f"{cost['pyconv']['flops'] / 1e6:.2f}"))
    k = cost['conv']['kernel']
    rows.append((f'plain {k}x{k} conv', str(k), '1', str(out_total),
                 f"{cost['conv']['params']:,}", f"{cost['conv']['flops'] / 1e6:.2f}"))
    ratio = cost['pyconv']['flops'] / cost['conv']['flops']
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append(f'PyConv / plain conv FLOPs: {ratio:.3f}')
    return '\n'.join(lines)
