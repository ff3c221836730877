"""Write a small, learnable scene-parsing dataset in ADE20K folder format.

    python tools/data/make_tiny_ade20k.py data/tiny_ade20k

Every image is a synthetic outdoor scene: sky above a random horizon, road and grass below it,
buildings standing on the horizon, trees, cars on the road, and one patch of "other" stuff.
Each class has its own colour (jittered per image) and texture, with pixel noise on top, so a
segmentation network learns it in a few hundred iterations on a CPU. The layout and the label
convention are ADE20K's (ADEChallengeData2016), which mmseg's ``ADE20KDataset`` reads::

    OUT/images/training/tiny_train_00000.jpg ...     RGB, JPEG
    OUT/images/validation/tiny_val_00000.jpg ...
    OUT/annotations/training/tiny_train_00000.png    8-bit class ids, same size as the image
    OUT/annotations/validation/tiny_val_00000.png

Mask values are ADE20K ids (1 = wall ... 150 = flag); 0 is "other", which ``ADE20KDataset``
ignores (``reduce_zero_label=True`` maps 0 to 255 and id ``c`` to class ``c - 1``). The classes
used are sky, building, tree, road, grass and car, so the ADE20K configs train on it unchanged.

The output is a pure function of the arguments (``--seed``), so runs are reproducible.
"""
import argparse
import os
import sys
from typing import Dict, Tuple

import numpy as np
from PIL import Image

# ADE20K ids (1-based, as in the mask files) and the mean colour of each class.
SKY, BUILDING, TREE, ROAD, GRASS, CAR = 3, 2, 5, 7, 10, 21
OTHER = 0
CLASS_COLOURS: Dict[int, Tuple[int, int, int]] = {
    SKY: (110, 170, 235),
    BUILDING: (170, 90, 60),
    TREE: (30, 110, 35),
    ROAD: (120, 120, 120),
    GRASS: (120, 200, 70),
    CAR: (200, 30, 40),
}
CLASS_IDS = tuple(sorted(CLASS_COLOURS))
SPLITS = (('training', 'train'), ('validation', 'val'))


def _jitter(rng: np.random.Generator, colour: Tuple[int, int, int]) -> np.ndarray:
    return np.asarray(colour, np.float32) + rng.uniform(-25, 25, 3)


def render(height: int, width: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 RGB image H x W x 3, uint8 ADE20K-id mask H x W)."""
    yy, xx = np.mgrid[0:height, 0:width]
    mask = np.empty((height, width), np.uint8)
    horizon = int(rng.uniform(0.3, 0.6) * height)
    mask[:horizon] = SKY
    split = int(rng.uniform(0.2, 0.8) * width)
    road_left = rng.random() < 0.5
    ground = (xx < split) == road_left
    mask[horizon:] = np.where(ground[horizon:], ROAD, GRASS)

    for _ in range(rng.integers(0, 3)):  # buildings stand on the horizon
        w = int(rng.uniform(0.12, 0.3) * width)
        h = int(rng.uniform(0.15, 0.4) * height)
        x0 = int(rng.uniform(0, width - w))
        mask[max(horizon - h, 0):horizon, x0:x0 + w] = BUILDING
    for _ in range(rng.integers(0, 3)):  # trees around the horizon
        r = rng.uniform(0.1, 0.18) * min(height, width)
        cx, cy = rng.uniform(0, width), horizon + rng.uniform(-0.15, 0.05) * height
        mask[(xx - cx)**2 + (yy - cy)**2 <= r * r] = TREE
    road_rows = np.arange(horizon, height)
    for _ in range(rng.integers(0, 3)):  # cars on the road
        if road_rows.size < 4:
            break
        w = int(rng.uniform(0.15, 0.25) * width)
        h = max(2, w // 2)
        x_lo, x_hi = (0, split) if road_left else (split, width)
        if x_hi - x_lo <= w:
            continue
        x0 = int(rng.uniform(x_lo, x_hi - w))
        y0 = int(rng.uniform(horizon, max(horizon + 1, height - h)))
        mask[y0:y0 + h, x0:x0 + w] = CAR
    h, w = int(rng.uniform(0.05, 0.15) * height), int(rng.uniform(0.05, 0.15) * width)
    y0, x0 = int(rng.uniform(0, height - h)), int(rng.uniform(0, width - w))
    mask[y0:y0 + h, x0:x0 + w] = OTHER

    image = np.zeros((height, width, 3), np.float32)
    for class_id, colour in CLASS_COLOURS.items():
        image[mask == class_id] = _jitter(rng, colour)
    image[mask == OTHER] = rng.uniform(0, 255, 3)
    # Textures that tell classes of similar colour apart: stripes on the road, windows on
    # buildings, speckles on grass and trees; a vertical gradient in the sky.
    image[(mask == ROAD) & (yy % 4 == 0)] -= 25
    image[(mask == BUILDING) & (xx % 4 < 2) & (yy % 4 < 2)] += 50
    speckle = rng.normal(0, 18, (height, width, 1))
    image += np.where(np.isin(mask, (GRASS, TREE))[..., None], speckle, 0)
    image[mask == SKY] += ((yy[mask == SKY] / max(horizon, 1)) * 30)[:, None]
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_dataset(out_dir: str, height: int, width: int, num_train: int, num_val: int,
                  seed: int) -> Dict[str, int]:
    """Write both splits; returns the number of images per split folder."""
    counts = {}
    for split_index, ((folder, prefix), count) in enumerate(zip(SPLITS, (num_train, num_val))):
        img_dir = os.path.join(out_dir, 'images', folder)
        ann_dir = os.path.join(out_dir, 'annotations', folder)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        rng = np.random.default_rng([seed, split_index])
        for i in range(count):
            image, mask = render(height, width, rng)
            name = f'tiny_{prefix}_{i:05d}'
            Image.fromarray(image).save(os.path.join(img_dir, name + '.jpg'), quality=95)
            Image.fromarray(mask, mode='L').save(os.path.join(ann_dir, name + '.png'))
        counts[folder] = count
    return counts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a small synthetic scene-parsing dataset in ADE20K folder format '
        '(images/{training,validation}/*.jpg, annotations/{training,validation}/*.png).')
    parser.add_argument('out_dir', help='output folder, e.g. data/tiny_ade20k')
    parser.add_argument('--size', type=int, nargs='+', default=[64],
                        help='image height and width in pixels (one value: square). '
                        'Default: 64')
    parser.add_argument('--num-train', type=int, default=200,
                        help='training images. Default: 200')
    parser.add_argument('--num-val', type=int, default=40, help='validation images. Default: 40')
    parser.add_argument('--seed', type=int, default=0, help='random seed. Default: 0')
    args = parser.parse_args(argv)
    if len(args.size) > 2:
        parser.error(f'--size takes a side or a height and a width, got {args.size}')
    if min(args.size) < 16:
        parser.error(f'--size must be at least 16 pixels, got {args.size}')
    if args.num_train < 1 or args.num_val < 1:
        parser.error('--num-train and --num-val must be positive')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    height, width = args.size[0], args.size[-1]
    counts = write_dataset(args.out_dir, height, width, args.num_train, args.num_val, args.seed)
    print(f'wrote {counts["training"]} training and {counts["validation"]} validation scenes '
          f'({height}x{width} px, ADE20K ids {list(CLASS_IDS)}) to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
