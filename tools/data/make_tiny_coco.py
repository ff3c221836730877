"""Write a small, learnable object-detection and instance-segmentation dataset in COCO format.

    python tools/data/make_tiny_coco.py data/tiny_coco

Every image shows one to three shapes (the category: circle, square or triangle) at random
positions, sizes, rotations and colours, apart from each other (their circumscribed circles do
not meet), on a random background with pixel noise, so a detector must learn the shape itself,
not a colour. The layout is COCO's, which mmdet's ``CocoDataset`` reads (``data_prefix=dict(
img='train/')``, ``ann_file='annotations/instances_train.json'``)::

    OUT/train/train_00000.png ...
    OUT/val/val_00000.png ...
    OUT/annotations/instances_train.json
    OUT/annotations/instances_val.json

Category ids start at 1, as in COCO; :data:`CLASSES` holds the names in id order, for
``metainfo=dict(classes=CLASSES)``. Image and annotation ids start at 1 in each file. Every
annotation has its box (``[x, y, w, h]``), its polygon (``segmentation``; a circle is drawn and
annotated as the same 32-gon, so the mask is exactly what the image shows), its area and
``iscrowd=0``.

The output is a pure function of the arguments (``--seed``), so runs are reproducible.
"""
import argparse
import json
import math
import os
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

Point = Tuple[float, float]
Colour = Tuple[int, int, int]

# Category names in id order (id = index + 1); the number of polygon corners of each.
CLASSES = ('circle', 'square', 'triangle')
CORNERS = {'circle': 32, 'square': 4, 'triangle': 3}
SPLITS = ('train', 'val')
MAX_OBJECTS = 3
# Circumradius of a shape as a fraction of the image side: at 64x64 a shape spans 15-28 px.
RADIUS = (0.12, 0.22)
PLACEMENT_TRIES = 50
SUPERSAMPLE = 4


def _polygon(cx: float, cy: float, radius: float, angle: float, corners: int) -> List[Point]:
    return [(cx + radius * math.cos(angle + 2 * math.pi * i / corners),
             cy + radius * math.sin(angle + 2 * math.pi * i / corners)) for i in range(corners)]


def _foreground(rng: np.random.Generator, bg: np.ndarray) -> Colour:
    """A colour that differs clearly in brightness from the background ``bg``."""
    while True:
        fg = rng.integers(0, 256, 3)
        if abs(int(bg.mean()) - int(fg.mean())) >= 70:
            return tuple(int(v) for v in fg)


def _place(size: int, rng: np.random.Generator) -> List[Tuple[float, float, float]]:
    """Centres and circumradii of one to three shapes whose circumscribed circles are apart."""
    wanted = int(rng.integers(1, MAX_OBJECTS + 1))
    placed: List[Tuple[float, float, float]] = []
    for _ in range(PLACEMENT_TRIES):
        if len(placed) == wanted:
            break
        r = rng.uniform(*RADIUS) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        if all(math.hypot(cx - x, cy - y) >= r + s for x, y, s in placed):
            placed.append((float(cx), float(cy), float(r)))
    return placed


def _area(points: Sequence[Point]) -> float:
    """The shoelace formula: the area a polygon encloses."""
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in
                   zip(points, points[1:] + points[:1]))) / 2


def render(size: int, rng: np.random.Generator) -> Tuple[Image.Image, List[Dict]]:
    """One image and its objects (``category_id``, ``segmentation``, ``bbox``, ``area``), all
    drawn from ``rng``; coordinates in pixels, (0, 0) the top-left corner of the image."""
    bg = rng.integers(0, 256, 3)
    canvas = Image.new('RGB', (size * SUPERSAMPLE, ) * 2, tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(canvas)
    objects = []
    for cx, cy, r in _place(size, rng):
        label = int(rng.integers(len(CLASSES)))
        corners = CORNERS[CLASSES[label]]
        # Corners at pixel centres: pycocotools rasterises such a polygon to a mask whose
        # bounding box is the polygon's to half a pixel (sharp corners elsewhere can lose more).
        points = [(math.floor(x) + 0.5, math.floor(y) + 0.5) for x, y in _polygon(
            cx, cy, r, rng.uniform(0, 2 * math.pi), corners)]
        # PIL fills the canvas pixels whose index lies inside the polygon; shifting by half a
        # pixel makes that their centre, so the image matches the polygon's pixel coordinates.
        draw.polygon([(SUPERSAMPLE * x - 0.5, SUPERSAMPLE * y - 0.5) for x, y in points],
                     fill=_foreground(rng, bg))
        xs, ys = [x for x, _ in points], [y for _, y in points]
        objects.append(dict(
            category_id=label + 1,
            segmentation=[[c for point in points for c in point]],
            bbox=[min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
            area=_area(points)))
    # Averaging 4x4 blocks anti-aliases the edges, as in photos.
    image = canvas.resize((size, size), Image.BOX)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), objects


def write_dataset(root: str, num_train: int, num_val: int, size: int,
                  seed: int) -> Dict[str, Dict[str, int]]:
    """Write both splits and their annotation files; returns the number of images and objects
    per split."""
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(CLASSES)]
    counts = {}
    for split_index, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        # One generator per split: the splits never share an image.
        rng = np.random.default_rng([seed, split_index])
        images, annotations = [], []
        for i in range(count):
            image, objects = render(size, rng)
            file_name = f'{split}_{i:05d}.png'
            image.save(os.path.join(root, split, file_name))
            images.append(dict(id=i + 1, file_name=file_name, width=size, height=size))
            for obj in objects:
                annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, iscrowd=0,
                                        **obj))
        coco = dict(
            info=dict(description=f'tiny shapes in COCO format ({split}, seed {seed})'),
            licenses=[], images=images, annotations=annotations, categories=categories)
        with open(os.path.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(coco, f)
        counts[split] = dict(images=len(images), objects=len(annotations))
    return counts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a small shapes dataset in COCO detection format (train/ and val/ '
        'images, annotations/instances_{train,val}.json with boxes and polygon masks).')
    parser.add_argument('out_dir', help='output folder, e.g. data/tiny_coco')
    parser.add_argument('--train', type=int, default=200, help='training images. Default: 200')
    parser.add_argument('--val', type=int, default=50, help='validation images. Default: 50')
    parser.add_argument('--size', type=int, default=64,
                        help='image side in pixels. Default: 64')
    parser.add_argument('--seed', type=int, default=0, help='random seed. Default: 0')
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error(f'--size must be at least 32 pixels, got {args.size}')
    if args.train < 1 or args.val < 1:
        parser.error('--train and --val must be positive')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    counts = write_dataset(args.out_dir, args.train, args.val, args.size, args.seed)
    print(f'wrote {counts["train"]["images"]} training images ({counts["train"]["objects"]} '
          f'objects) and {counts["val"]["images"]} validation images '
          f'({counts["val"]["objects"]} objects) of {len(CLASSES)} categories '
          f'({", ".join(CLASSES)}; {args.size}x{args.size} px) to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
