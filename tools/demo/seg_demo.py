"""Segment one image and write it with the predicted classes as a colour overlay.

    python tools/demo/seg_demo.py IMAGE CONFIG CHECKPOINT --out overlay.png
                                  [--opacity 0.5] [--device cpu] [--cfg-options KEY=VALUE ...]

The image goes through the config's test pipeline (``test_dataloader``) and model
(sliding-window or whole-image inference, as the config says). Colours come from the
checkpoint's ``dataset_meta`` (what mmseg training and tools/convert/pyconvsegnet_to_mmseg.py
store), else from the config's test dataset, else from a fixed random palette. The classes
found and their pixel shares are printed.

A checkpoint that does not fit the config's model (another network, or another number of
classes) stops the demo with a message saying so (exit status 2), before anything is written.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

import mmpyconv  # noqa: F401  (registers mmpyconv's modules)
from mmpyconv.runner import (
    DictAction,
    UsageError,
    build_model,
    check_checkpoint,
    load_config,
    run_tool,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Segment an image with an mmseg config and checkpoint; write the image '
        'with the predicted classes as a colour overlay.')
    parser.add_argument('image', help='input image file')
    parser.add_argument('config', help='mmseg config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output image file (e.g. overlay.png)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='weight of the class colours in the overlay, 0 to 1. Default: 0.5')
    parser.add_argument('--device', default='cpu', help='torch device. Default: cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args(argv)
    if not 0.0 <= args.opacity <= 1.0:
        parser.error(f'--opacity must lie in [0, 1], got {args.opacity}')
    return args


def fixed_palette(num_classes: int) -> List[List[int]]:
    """A reproducible palette for models whose dataset has none."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (num_classes, 3)).tolist()


def class_names_and_palette(model, cfg, num_classes: int) -> Dict[str, Sequence]:
    """Class names and colours for ``num_classes`` classes (see the module docstring)."""
    candidates = [getattr(model, 'dataset_meta', None)]
    dataset_type = cfg.get('test_dataloader', {}).get('dataset', {}).get('type')
    if isinstance(dataset_type, str):
        from mmseg.registry import DATASETS
        dataset_cls = DATASETS.get(dataset_type)
        candidates.append(getattr(dataset_cls, 'METAINFO', None))
    for meta in candidates:
        if meta and len(meta.get('classes') or ()) == num_classes and \
                len(meta.get('palette') or ()) >= num_classes:
            return dict(classes=list(meta['classes']), palette=list(meta['palette']))
    return dict(classes=[str(i) for i in range(num_classes)], palette=fixed_palette(num_classes))


def overlay(image_rgb: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]],
            opacity: float) -> np.ndarray:
    """Blend the class colours of ``labels`` (H x W ids) into an RGB image of the same size."""
    colours = np.asarray(palette, dtype=np.float32)[labels]
    blended = image_rgb.astype(np.float32) * (1 - opacity) + colours * opacity
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def main(argv=None) -> None:
    args = parse_args(argv)
    import mmcv
    import torch
    from mmengine.runner import load_checkpoint
    from mmseg.apis import inference_model

    if not osp.isfile(args.image):
        raise UsageError(f'image {args.image!r} does not exist')
    image_bgr = mmcv.imread(args.image)
    if image_bgr is None:
        raise UsageError(f'{args.image!r} is not an image file that OpenCV can read')
    if not osp.isfile(args.checkpoint):
        raise UsageError(f'checkpoint {args.checkpoint!r} does not exist')

    cfg = load_config(args.config, args.cfg_options)
    if cfg.model.get('type') == 'EncoderDecoder' and 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None  # the checkpoint brings every weight
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    model = build_model(cfg)
    check_checkpoint(model, args.checkpoint, args.config, 'demo')
    checkpoint = load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
    meta: Optional[Dict] = (checkpoint.get('meta') or {}).get('dataset_meta')
    if meta:
        model.dataset_meta = meta
    # mmseg's inference reads ``cfg.test_pipeline``; take the one tools/test.py would use.
    cfg.test_pipeline = [dict(t) for t in cfg.test_dataloader.dataset.pipeline]
    model.cfg = cfg
    model.to(torch.device(args.device)).eval()

    result = inference_model(model, image_bgr)
    labels = result.pred_sem_seg.data[0].cpu().numpy().astype(np.int64)
    num_classes = model.decode_head.num_classes
    info = class_names_and_palette(model, cfg, num_classes)
    out = overlay(mmcv.bgr2rgb(image_bgr), labels, info['palette'], args.opacity)
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        raise UsageError(f'--out {args.out}: folder {out_dir} does not exist')
    mmcv.imwrite(mmcv.rgb2bgr(out), args.out)

    ids, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts)
    found = ', '.join(f'{info["classes"][ids[i]]} {100.0 * counts[i] / labels.size:.1f}%'
                      for i in order)
    print(f'{args.image}: {labels.shape[0]}x{labels.shape[1]} px, classes: {found}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(run_tool(main))
