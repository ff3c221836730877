"""Convert a PyConv authors' ImageNet checkpoint (github.com/iduta/pyconv) for mmpretrain.

    python tools/convert/pyconv_to_mmpretrain.py pyconvresnet50.pth \
        checkpoints/pyconvresnet50_in1k.pth

The input is a state dict of the authors' PyConvResNet or PyConvHGResNet (plain, or wrapped as
their training script saves it: {'state_dict': ...} with 'module.' prefixes). The output is an
mmpretrain ImageClassifier checkpoint (backbone.*, head.fc.*) for the matching config, e.g.
configs/pyconvresnet/pyconvresnet50_8xb32_in1k.py. The architecture is read from the keys and
shapes; every tensor must find its place and shape, otherwise nothing is written and the error
lists what did not fit (exit status 2). The mapping: mmpyconv/convert/classifier.py.
"""
import argparse
import os
import pickle
import sys

import torch

from mmpyconv.convert import ConversionError, convert_original_classifier, extract_state_dict
from mmpyconv.convert.classifier import FAMILIES
from mmpyconv.version import __version__


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert a PyConv authors' checkpoint into an mmpretrain ImageClassifier "
        'checkpoint.')
    parser.add_argument('src', help="the authors' checkpoint (.pth / .pth.tar)")
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument('--family', choices=sorted(FAMILIES),
                        help='expected network family (checked). Default: read from the keys')
    parser.add_argument('--depth', type=int,
                        choices=sorted({d for cls in FAMILIES.values() for d in cls.arch_settings}),
                        help='expected depth (checked). Default: read from the keys')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.src):
        print(f'error: {args.src} does not exist', file=sys.stderr)
        return 2
    # The authors' files are plain tensors (and, from their training script, a few numbers):
    # nothing that needs more than weights-only loading.
    try:
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
        converted, arch = convert_original_classifier(
            extract_state_dict(checkpoint), family=args.family, depth=args.depth)
    except (ConversionError, pickle.UnpicklingError, RuntimeError, ValueError) as e:
        print(f'error: {args.src}: {e}', file=sys.stderr)
        return 2
    name = f'{arch["family"]}-{arch["depth"]}'
    meta = dict(converted_from=os.path.abspath(args.src), architecture=name,
                num_classes=arch['num_classes'], mmpyconv_version=__version__)
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=converted), args.dst)
    print(f'converted {name} ({len(converted)} tensors, {arch["num_classes"]} classes) '
          f'to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
