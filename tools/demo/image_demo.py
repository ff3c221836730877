"""Classify one image with a trained mmpretrain model and print the top classes.

    python tools/demo/image_demo.py IMAGE CONFIG CHECKPOINT [--topk 5] [--device cpu]

Class names come from the checkpoint (saved by training) or from the config's test dataset
(ImageNet for the ImageNet configs). A checkpoint that does not fit the config's model is
refused with a message (exit status 2).
"""
import argparse
import os
import sys

import mmpyconv  # noqa: F401  (registers mmpyconv's modules)
from mmpyconv.compat import allow_mmengine_checkpoints
from mmpyconv.runner import UsageError, build_model, check_checkpoint, load_config, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the top classes of one image.')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='mmpretrain config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--topk', type=int, default=5, help='classes to print. Default: 5')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0. Default: cpu')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not os.path.isfile(args.image):
        raise UsageError(f'image {args.image!r} does not exist')
    cfg = load_config(args.config)
    if cfg.default_scope != 'mmpretrain':
        raise UsageError(f'{args.config} is a {cfg.default_scope} config; this demo classifies '
                         'images with mmpretrain configs')
    check_checkpoint(build_model(cfg), args.checkpoint, args.config, 'the demo')
    allow_mmengine_checkpoints()
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(cfg, pretrained=args.checkpoint,
                                               device=args.device)
    result = inferencer(args.image)[0]
    scores = result['pred_scores']
    classes = inferencer.classes
    order = scores.argsort()[::-1][:args.topk]
    print(f'{args.image}: top-{len(order)} of {len(scores)} classes')
    for rank, label in enumerate(order, 1):
        name = classes[label] if classes is not None else f'class {label}'
        print(f'{rank:>2}. {name:<30} {scores[label]:.4f}')


if __name__ == '__main__':
    sys.exit(run_tool(main))
