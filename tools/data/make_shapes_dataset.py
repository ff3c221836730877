"""Write a small, learnable image-classification dataset in ImageNet folder format.

    python tools/data/make_shapes_dataset.py data/shapes

Every image shows one filled or outlined geometric shape (the class) at a random position, size,
rotation and colour, on a random background with pixel noise, so a classifier must learn the
shape itself, not a colour or a location. The layout is the one mmpretrain's ``ImageNet`` and
``CustomDataset`` read::

    OUT/train/<class>/<class>_00000.png ...
    OUT/val/<class>/<class>_00000.png ...
    OUT/meta/train.txt, OUT/meta/val.txt    "<class>/<file> <label>" per line
    OUT/meta/classes.txt                    one class name per line, in label order

The output is a pure function of the arguments (``--seed``), so runs are reproducible.
"""
import argparse
import math
import os
import sys
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

Point = Tuple[float, float]
Colour = Tuple[int, int, int]


def _polygon(cx: float, cy: float, radius: float, angle: float, corners: int) -> List[Point]:
    return [(cx + radius * math.cos(angle + 2 * math.pi * i / corners),
             cy + radius * math.sin(angle + 2 * math.pi * i / corners)) for i in range(corners)]


def _rotate(points: Sequence[Point], cx: float, cy: float, angle: float) -> List[Point]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c)
            for x, y in points]


def _line_width(radius: float) -> int:
    return max(2, int(round(radius * 0.35)))


def draw_circle(d: ImageDraw.ImageDraw, cx, cy, r, angle, fg) -> None:
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)


def draw_ring(d: ImageDraw.ImageDraw, cx, cy, r, angle, fg) -> None:
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fg, width=_line_width(r))


def draw_square(d: ImageDraw.ImageDraw, cx, cy, r, angle, fg) -> None:
    d.polygon(_polygon(cx, cy, r, angle, 4), fill=fg)


def draw_triangle(d: ImageDraw.ImageDraw, cx, cy, r, angle, fg) -> None:
    d.polygon(_polygon(cx, cy, r, angle, 3), fill=fg)


def draw_cross(d: ImageDraw.ImageDraw, cx, cy, r, angle, fg) -> None:
    w = _line_width(r) / 2
    bar = [(cx - r, cy - w), (cx + r, cy - w), (cx + r, cy + w), (cx - r, cy + w)]
    d.polygon(_rotate(bar, cx, cy, angle), fill=fg)
    d.polygon(_rotate(bar, cx, cy, angle + math.pi / 2), fill=fg)


def draw_star(d: ImageDraw.ImageDraw, cx, cy, r, angle, fg) -> None:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.4
        a = angle + math.pi * i / 5
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    d.polygon(points, fill=fg)


SHAPES: Dict[str, Callable] = {
    'circle': draw_circle,
    'cross': draw_cross,
    'ring': draw_ring,
    'square': draw_square,
    'star': draw_star,
    'triangle': draw_triangle,
}


def _colours(rng: np.random.Generator) -> Tuple[Colour, Colour]:
    """A background and a foreground colour that differ clearly in brightness."""
    while True:
        bg = rng.integers(0, 256, 3)
        fg = rng.integers(0, 256, 3)
        if abs(int(bg.mean()) - int(fg.mean())) >= 70:
            return tuple(int(v) for v in bg), tuple(int(v) for v in fg)


def render(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of ``shape``; everything else about it is drawn from ``rng``."""
    # Draw at 4x and downsample: anti-aliased edges, as in photos.
    scale = 4
    canvas = size * scale
    bg, fg = _colours(rng)
    image = Image.new('RGB', (canvas, canvas), bg)
    radius = rng.uniform(0.22, 0.42) * canvas
    margin = radius + 1
    cx = rng.uniform(margin, canvas - margin)
    cy = rng.uniform(margin, canvas - margin)
    SHAPES[shape](ImageDraw.Draw(image), cx, cy, radius, rng.uniform(0, 2 * math.pi), fg)
    image = image.resize((size, size), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_dataset(out_dir: str, classes: Sequence[str], size: int, train_per_class: int,
                  val_per_class: int, seed: int) -> Dict[str, int]:
    """Write both splits and the meta files; returns the number of images per split."""
    unknown = sorted(set(classes) - set(SHAPES))
    if unknown:
        raise ValueError(f'unknown classes {unknown}; choose from {sorted(SHAPES)}')
    if len(set(classes)) < 2:
        raise ValueError('a classification dataset needs at least two classes')
    classes = sorted(set(classes))
    os.makedirs(os.path.join(out_dir, 'meta'), exist_ok=True)
    with open(os.path.join(out_dir, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(classes) + '\n')
    counts = {}
    for split_index, (split, per_class) in enumerate((('train', train_per_class),
                                                      ('val', val_per_class))):
        lines = []
        for label, name in enumerate(classes):
            folder = os.path.join(out_dir, split, name)
            os.makedirs(folder, exist_ok=True)
            # One generator per (split, class): a class's images do not depend on which
            # other classes were asked for, and the splits never share an image.
            rng = np.random.default_rng([seed, split_index, sorted(SHAPES).index(name)])
            for i in range(per_class):
                file_name = f'{name}_{i:05d}.png'
                render(name, size, rng).save(os.path.join(folder, file_name))
                lines.append(f'{name}/{file_name} {label}')
        with open(os.path.join(out_dir, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        counts[split] = len(lines)
    return counts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a small shapes dataset in ImageNet folder format (train/ and val/ '
        'with one subfolder per class, plus meta/).')
    parser.add_argument('out_dir', help='output folder, e.g. data/shapes')
    parser.add_argument('--classes', nargs='+', default=sorted(SHAPES),
                        help=f'classes to write. Default: all of {sorted(SHAPES)}')
    parser.add_argument('--size', type=int, default=32, help='image side in pixels. Default: 32')
    parser.add_argument('--train-per-class', type=int, default=150,
                        help='training images per class. Default: 150')
    parser.add_argument('--val-per-class', type=int, default=50,
                        help='validation images per class. Default: 50')
    parser.add_argument('--seed', type=int, default=0, help='random seed. Default: 0')
    args = parser.parse_args(argv)
    if args.size < 8:
        parser.error(f'--size must be at least 8 pixels, got {args.size}')
    if args.train_per_class < 1 or args.val_per_class < 1:
        parser.error('--train-per-class and --val-per-class must be positive')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        counts = write_dataset(args.out_dir, args.classes, args.size, args.train_per_class,
                               args.val_per_class, args.seed)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'wrote {counts["train"]} training and {counts["val"]} validation images of '
          f'{len(set(args.classes))} classes ({args.size}x{args.size} px) to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
