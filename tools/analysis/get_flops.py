"""Parameters and FLOPs of configs or named architectures, printed as one table.

    python tools/analysis/get_flops.py pyconvresnet50 resnet50 --shape 224
    python tools/analysis/get_flops.py configs/pyconvseg/ade20k.py --shape 512 512
    python tools/analysis/get_flops.py configs/pyconvaction/i3d_*.py --frames 32

A MODEL is a config file (its ``model`` is built in the toolbox of its ``default_scope``) or an
architecture name: ``pyconvresnet{18,34,50,101,152}``, ``pyconvhgresnet{50,101,152}`` or
torchvision's ``resnet{18,34,50,101,152}``, each as an ImageNet classifier (backbone, global
average pooling, 1000-class linear layer). No dataset is needed. FLOPs are multiply-adds counted
by mmengine's analyzer (the convention OpenMMLab's model zoos report). A video recognizer
(mmaction2) is counted on one view as mmaction2's model zoo counts it: ``--frames`` frames of
``--shape`` (the segments of a 2D recognizer such as TSN, the clip length of a 3D one).
"""
import argparse
import functools
import os
import sys
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parameters and FLOPs of configs or architectures (no dataset needed).')
    parser.add_argument('models', nargs='+', metavar='MODEL',
                        help='a config file, or an arch such as pyconvresnet50 or resnet50')
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='input size: H (square) or H W. Default: 224')
    parser.add_argument('--frames', type=int, default=None,
                        help='frames of a video recognizer\'s view: the segments of a 2D one '
                        '(default 8), the clip length of a 3D one (default 32)')
    parser.add_argument('--num-classes', type=int, default=1000,
                        help='classes of the linear head of an arch. Default: 1000')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for config files, as in tools/train.py')
    args = parser.parse_args(argv)
    if len(args.shape) not in (1, 2) or min(args.shape) <= 0:
        parser.error(f'--shape takes one or two positive ints, got {args.shape}')
    return args


def build_arch(name: str, num_classes: int) -> nn.Module:
    """An ImageNet classifier for an architecture name (torchvision's for resnet<depth>)."""
    from mmpyconv.models.arch import build_classifier
    return build_classifier(name, num_classes, resnet='torchvision')


def build_config_model(path: str, cfg_options: Sequence[str]) -> nn.Module:
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(path)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    if 'model' not in cfg:
        raise ValueError(f'{path} has no `model` to build')
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    from mmengine.registry import MODELS
    model_cfg = cfg.model
    # A pretrained checkpoint is irrelevant to counting and may not exist here.
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg.backbone.pop('init_cfg', None)
        model_cfg.backbone.pop('pretrained', None)
    model_cfg.pop('pretrained', None)
    return MODELS.build(model_cfg)


def model_input(model: nn.Module, shape: Tuple[int, int],
                frames: Optional[int] = None) -> Tuple[torch.Tensor, str]:
    """The input of one forward pass, and how the table names it: 1 x 3 x H x W, or one view
    of a video recognizer (1 x T x 3 x H x W for a 2D one, 1 x 1 x 3 x T x H x W for a 3D)."""
    kind = type(model).__name__
    if kind == 'Recognizer2D':
        frames = frames or 8
        return torch.rand(1, frames, 3, *shape), f'{frames}x3x{shape[0]}x{shape[1]}'
    if kind == 'Recognizer3D':
        frames = frames or 32
        return torch.rand(1, 1, 3, frames, *shape), f'3x{frames}x{shape[0]}x{shape[1]}'
    return torch.rand(1, 3, *shape), f'3x{shape[0]}x{shape[1]}'


def count(model: nn.Module, shape: Tuple[int, int],
          frames: Optional[int] = None) -> Tuple[int, int]:
    """(params, FLOPs) of one forward pass on :func:`model_input`."""
    from mmengine.analysis import FlopAnalyzer

    model.eval()
    if type(model).__module__.startswith('mmdet.'):
        # A two-stage detector's RPN reads the image size from a data sample even in
        # mode='tensor', which a traced input cannot be: bind one (as mmdet's own get_flops).
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                             scale_factor=(1.0, 1.0)))
        model.forward = functools.partial(model.forward, data_samples=[sample], mode='tensor')
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs=(model_input(model, shape, frames)[0], ))
        # Norms, activations and additions are not counted, by the model zoos' convention.
        flops = analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()
    return sum(p.numel() for p in model.parameters()), int(flops)


def format_table(rows: List[Tuple[str, str, int, int]]) -> str:
    header = ('model', 'input', 'params', 'params (M)', 'FLOPs (G)')
    cells = [header] + [(name, shape, f'{params:,}', f'{params / 1e6:.2f}', f'{flops / 1e9:.2f}')
                        for name, shape, params, flops in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [' | '.join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, '-+-'.join('-' * w for w in widths))
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    shape = (args.shape[0], args.shape[-1])
    import mmpyconv  # noqa: F401  (registers the PyConv modules)

    rows = []
    for name in args.models:
        if name.endswith('.py'):
            if not os.path.isfile(name):
                print(f'error: config file {name} does not exist', file=sys.stderr)
                return 2
            model = build_config_model(name, args.cfg_options)
        else:
            try:
                model = build_arch(name, args.num_classes)
            except ValueError as e:
                print(f'error: {e}', file=sys.stderr)
                return 2
        params, flops = count(model, shape, args.frames)
        rows.append((name, model_input(model, shape, args.frames)[1], params, flops))
    print(format_table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
