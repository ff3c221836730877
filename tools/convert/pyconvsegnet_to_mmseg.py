"""Convert the PyConvSegNet authors' ADE20K checkpoints into mmseg checkpoints.

    python tools/convert/pyconvsegnet_to_mmseg.py SRC.pth DST.pth [--config CONFIG]

The network is read from the checkpoint (PyConvResNet, PyConvHGResNet or a plain ResNet
backbone, depth 50/101/152, class count) and the result is checked against the model of the
matching config of configs/pyconvseg/ (from its metafile) or of --config: every source tensor
must be used, every model tensor filled with the same shape, or nothing is written and the error
lists what is wrong (exit status 2). The mapping: mmpyconv/convert/segnet.py.
"""
import argparse
import os.path as osp
import pickle
import sys

import mmpyconv  # noqa: F401  (registers the backbones)
from mmpyconv.convert import ConversionError
from mmpyconv.convert.segnet import convert_segnet_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert an ADE20K checkpoint of the PyConvSegNet authors "
        '(github.com/iduta/pyconvsegnet) into an mmseg checkpoint.')
    parser.add_argument('src', help="the authors' checkpoint (.pth)")
    parser.add_argument('dst', help='the mmseg checkpoint to write (.pth)')
    parser.add_argument(
        '--config', help='mmseg config whose model the checkpoint must fit. Default: the one '
        'in configs/pyconvseg/ for the checkpoint\'s backbone')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        print(f'error: {args.src} does not exist', file=sys.stderr)
        return 2
    try:
        info = convert_segnet_file(args.src, args.dst, args.config)
    except (ConversionError, pickle.UnpicklingError) as e:
        print(f'error: {args.src}: {e}', file=sys.stderr)
        return 2
    print(f'{args.src}: PyConvSegNet with {info["family"]}-{info["depth"]}, '
          f'{info["num_classes"]} classes -> {args.dst} ({info["tensors"]} tensors, fits '
          f'{osp.relpath(info["config"])})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
