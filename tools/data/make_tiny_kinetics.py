"""Write a small, learnable video-recognition dataset in mmaction2's Kinetics-400 video layout.

    python tools/data/make_tiny_kinetics.py data/tiny_kinetics

Every video shows one disc, small or large, crossing the frame horizontally at constant speed,
either from left to right or from right to left; the four classes are size x direction
(:data:`CLASSES`, in label order). The vertical position, exact size and colour of the disc, its
speed and path, the background colour and the level of per-frame pixel noise are drawn per
video, so a recognizer must learn the size and the motion, not a colour or a place. (Size, not
the outline: a disc and a square of a few pixels, which an earlier version used, were not told
apart by small networks trained from scratch on this little data; they memorised colours.)

The direction can be told only over time: a right-to-left video is a left-to-right one played
backwards (the same distribution of paths, run in reverse order), so any single frame, and any
order-free pooling of frames, has the same distribution for both directions. A frame model whose
consensus averages frames (TSN) can therefore tell only the size, at most about 50% accuracy
on the four classes, while a model that sees the order of frames (an I3D-style 3D CNN) can reach
100%. Horizontal flip augmentation (``Flip`` in mmaction2's Kinetics pipelines) reverses the
direction and so changes the class: leave it out of the training pipeline for this dataset.

The layout is the one mmaction2's Kinetics-400 configs read (``VideoDataset`` with
``data_prefix=dict(video='OUT/videos_train')``, ``DecordInit``/``DecordDecode``)::

    OUT/videos_train/small_left_to_right_00000.mp4 ...   RGB, MPEG-4 Part 2 ('mp4v')
    OUT/videos_val/small_left_to_right_00000.mp4 ...
    OUT/kinetics400_train_list_videos.txt     "<file in videos_train/> <label>" per line
    OUT/kinetics400_val_list_videos.txt       "<file in videos_val/> <label>" per line
    OUT/classes.txt                           one class name per line, in label order

The videos are written by OpenCV with fourcc ``mp4v`` (the MPEG-4 Part 2 encoder that
OpenCV's FFmpeg backend always has; H.264 needs an encoder that its wheels lack), which decord
reads back frame for frame. The codec is lossy: decoded frames differ from the drawn ones by a
few grey levels, mostly in the noise. Every frame is a key frame (GOP size 1): a predicted frame
carries codec artifacts that differ between the leading and the trailing edge of a moving shape,
which would tell the direction in a single frame. Frame sides 16, 24, 48 and 72 are refused:
decord 0.6.0 misreads them (see :data:`DECORD_BAD_SIZES`); odd sides too (the encoder needs even).

The output is a pure function of the arguments (``--seed``), so runs are reproducible: the
same seed gives the same lists and the same decoded frames (and, with the same OpenCV build,
the same files). An existing non-empty output folder is refused unless ``--force`` is given.
"""
import argparse
import glob
import math
import os
import sys
import warnings
from typing import Dict, Tuple

import numpy as np

# Class names in label order: size x direction of motion.
SIZES = ('small', 'large')
DIRECTIONS = ('left_to_right', 'right_to_left')
CLASSES = tuple(f'{size}_{direction}' for size in SIZES for direction in DIRECTIONS)
SPLITS = ('train', 'val')
FOURCC = 'mp4v'
MIN_FRAMES, MIN_SIZE = 8, 16
# Frame sides that decord 0.6.0 cannot read back from these files: it pads each decoded row to a
# multiple of 32 pixels and, where the padded row's bytes are a whole number of pixels, takes the
# padding for extra channels (a 16x16 frame comes back 16x16x6 and ``get_batch`` fails).
DECORD_BAD_SIZES = (16, 24, 48, 72)
# Disc radius of each size, as a fraction of the frame side (a large disc has 3 to 8 times
# the area of a small one).
RADIUS = dict(small=(0.07, 0.10), large=(0.18, 0.24))
# Distance the shape's centre travels over the clip, as a fraction of the frame width; the
# centre stays at least MARGIN of the width away from either side, so the shape is in frame
# (at the edges partly) all the clip.
TRAVEL = (0.5, 0.8)
MARGIN = 0.1
# Standard deviation of the per-frame pixel noise, in grey levels.
NOISE = (2.0, 12.0)
SUPERSAMPLE = 4


def _colours(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A dark background and a bright disc, each a slightly tinted grey: the contrast stays
    the same way round, so the little data these sets have goes to size and motion."""
    bg = rng.integers(0, 90) + rng.integers(-10, 11, 3)
    fg = rng.integers(160, 256) + rng.integers(-10, 11, 3)
    return (np.clip(bg, 0, 255).astype(np.float32), np.clip(fg, 0, 255).astype(np.float32))


def _coverage(cx: float, cy: float, half: float, size: int) -> np.ndarray:
    """The fraction of each pixel that a disc of radius ``half`` covers, (size, size) in
    [0, 1]; pixel ``i`` spans ``[i, i + 1)``, and the fraction is counted on a SUPERSAMPLE x
    SUPERSAMPLE grid of points (only in the disc's bounding box: elsewhere it is 0)."""
    coverage = np.zeros((size, size))
    x0, x1 = max(0, math.floor(cx - half)), min(size, math.ceil(cx + half))
    y0, y1 = max(0, math.floor(cy - half)), min(size, math.ceil(cy + half))
    if x0 >= x1 or y0 >= y1:
        return coverage
    dx = (np.arange(x0 * SUPERSAMPLE, x1 * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - cx
    dy = (np.arange(y0 * SUPERSAMPLE, y1 * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - cy
    inside = dx[None, :] ** 2 + dy[:, None] ** 2 <= half ** 2
    coverage[y0:y1, x0:x1] = inside.reshape(y1 - y0, SUPERSAMPLE, x1 - x0,
                                            SUPERSAMPLE).mean(axis=(1, 3))
    return coverage


def render(name: str, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One video of class ``name``, (frames, size, size, 3) RGB uint8; everything else about it
    is drawn from ``rng``, in the same order and from the same distributions for every class."""
    disc, direction = name.split('_', 1)
    bg, fg = _colours(rng)
    half = rng.uniform(*RADIUS[disc]) * size
    travel = rng.uniform(*TRAVEL) * size
    margin = MARGIN * size
    centre = rng.uniform(margin + travel / 2, size - margin - travel / 2)
    cy = rng.uniform(half + 1, size - half - 1)
    noise = rng.uniform(*NOISE)
    # Constant speed, left to right; the other direction is the same path played backwards.
    xs = centre + travel * (np.arange(frames) / (frames - 1) - 0.5)
    if direction == 'right_to_left':
        xs = xs[::-1]
    video = np.empty((frames, size, size, 3), np.uint8)
    for t, cx in enumerate(xs):
        alpha = _coverage(cx, cy, half, size).astype(np.float32)[..., None]
        pixels = (bg * (1 - alpha) + fg * alpha
                  + noise * rng.standard_normal((size, size, 3), dtype=np.float32))
        video[t] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return video


def write_video(path: str, video: np.ndarray, fps: float) -> None:
    """Write RGB frames ``video`` (T, H, W, 3) as an mp4 file with OpenCV, every frame a key
    frame where OpenCV can set the GOP size (it warns where it cannot)."""
    import cv2
    height, width = video.shape[1:3]
    fourcc = cv2.VideoWriter_fourcc(*FOURCC)
    writer = None
    gop_size = getattr(cv2, 'VIDEOWRITER_PROP_GOP_SIZE', None)
    if gop_size is not None:
        writer = cv2.VideoWriter(path, cv2.CAP_FFMPEG, fourcc, fps, (width, height),
                                 [gop_size, 1])
    if writer is None or not writer.isOpened():
        warnings.warn('OpenCV cannot set the GOP size: the videos get predicted frames, whose '
                      'codec artifacts differ a little with the direction of motion')
        writer = cv2.VideoWriter(path, fourcc, fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write {FOURCC!r} mp4 files (is it built with '
                           f'FFmpeg?): {path}')
    try:
        for frame in video:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV takes BGR
    finally:
        writer.release()


def check_arguments(num_train: int, num_val: int, frames: int, size: int, fps: float) -> None:
    """Raise ValueError for arguments the dataset cannot be made with."""
    if frames < MIN_FRAMES:
        raise ValueError(f'--frames must be at least {MIN_FRAMES}, got {frames}')
    if size < MIN_SIZE:
        raise ValueError(f'--size must be at least {MIN_SIZE} pixels, got {size}')
    if size % 2:
        raise ValueError(f'--size must be even (the MPEG-4 encoder needs it), got {size}')
    if size in DECORD_BAD_SIZES:
        raise ValueError(f'--size {size} gives videos that decord 0.6.0 misreads; choose another '
                         f'(not {", ".join(map(str, DECORD_BAD_SIZES))})')
    if num_train < 1 or num_val < 1:
        raise ValueError(f'--num-train and --num-val must be at least 1, got {num_train} and '
                         f'{num_val}')
    if not fps > 0:
        raise ValueError(f'--fps must be positive, got {fps}')


def write_dataset(out_dir: str, num_train: int = 24, num_val: int = 8, frames: int = 32,
                  size: int = 64, seed: int = 0, fps: float = 10,
                  force: bool = False) -> Dict:
    """Write both splits, their list files and classes.txt; ``num_train`` and ``num_val`` are
    videos per class.

    Returns ``dict(classes=..., classes_file=..., train=dict(ann_file=..., video_dir=...,
    videos=...), val=dict(...))``, all paths under ``out_dir``. Raises ValueError for bad
    arguments and FileExistsError for an existing non-empty ``out_dir`` unless ``force``, which
    deletes the mp4 files in its video folders and rewrites the lists.
    """
    check_arguments(num_train, num_val, frames, size, fps)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f'{out_dir} exists and is not a folder')
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise FileExistsError(f'{out_dir} exists and is not empty; use --force to overwrite')
    result: Dict = dict(classes=list(CLASSES), classes_file=os.path.join(out_dir, 'classes.txt'))
    for split_index, (split, per_class) in enumerate(zip(SPLITS, (num_train, num_val))):
        video_dir = os.path.join(out_dir, f'videos_{split}')
        os.makedirs(video_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(video_dir, '*.mp4')):
            os.remove(stale)
        lines = []
        for label, name in enumerate(CLASSES):
            # One generator per (split, class): the splits never share a video.
            rng = np.random.default_rng([seed, split_index, label])
            for i in range(per_class):
                file_name = f'{name}_{i:05d}.mp4'
                write_video(os.path.join(video_dir, file_name),
                            render(name, frames, size, rng), fps)
                lines.append(f'{file_name} {label}')
        ann_file = os.path.join(out_dir, f'kinetics400_{split}_list_videos.txt')
        with open(ann_file, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        result[split] = dict(ann_file=ann_file, video_dir=video_dir, videos=len(lines))
    with open(result['classes_file'], 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a small synthetic video dataset in mmaction2\'s Kinetics-400 layout '
        '(videos_train/, videos_val/, kinetics400_{train,val}_list_videos.txt, classes.txt): '
        'a small or a large disc moving left to right or right to left, 4 classes.')
    parser.add_argument('out_dir', nargs='?', default='data/tiny_kinetics',
                        help='output folder. Default: data/tiny_kinetics')
    parser.add_argument('--num-train', type=int, default=24,
                        help='training videos per class. Default: 24')
    parser.add_argument('--num-val', type=int, default=8,
                        help='validation videos per class. Default: 8')
    parser.add_argument('--frames', type=int, default=32,
                        help=f'frames per video, at least {MIN_FRAMES}. Default: 32')
    parser.add_argument('--size', type=int, default=64,
                        help=f'frame side in pixels, even, at least {MIN_SIZE}, not '
                        f'{", ".join(map(str, DECORD_BAD_SIZES))}. Default: 64')
    parser.add_argument('--fps', type=float, default=10, help='frame rate. Default: 10')
    parser.add_argument('--seed', type=int, default=0, help='random seed. Default: 0')
    parser.add_argument('--force', action='store_true',
                        help='write into an existing non-empty output folder (its old videos '
                        'are deleted)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = write_dataset(args.out_dir, args.num_train, args.num_val, args.frames,
                               args.size, args.seed, args.fps, args.force)
    except (ValueError, FileExistsError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {result["train"]["videos"]} training and {result["val"]["videos"]} validation '
          f'videos of {len(CLASSES)} classes ({", ".join(CLASSES)}; {args.frames} frames of '
          f'{args.size}x{args.size} px at {args.fps:g} fps) to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
