"""Detect objects in one image and write it with the predicted boxes (and masks) drawn.

    python tools/demo/det_demo.py IMAGE CONFIG CHECKPOINT --out result.png
                                  [--score-thr 0.3] [--device cpu] [--cfg-options KEY=VALUE ...]

The image goes through the config's test pipeline and model (mmdet's ``inference_detector``);
mmdet's visualizer draws the detections above ``--score-thr`` with their class names (from the
checkpoint's ``dataset_meta``, else the config's test dataset) and, for instance segmentation
models, their masks. The detections are also printed, best first.

A checkpoint that does not fit the config's model (another network, or another number of
classes) stops the demo with a message saying so (exit status 2), before anything is written.
"""
import argparse
import os.path as osp
import sys

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
        description='Detect objects in an image with an mmdet config and checkpoint; write '
        'the image with the detections drawn.')
    parser.add_argument('image', help='input image file')
    parser.add_argument('config', help='mmdet config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output image file (e.g. result.png)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw and print detections scoring at least this. Default: 0.3')
    parser.add_argument('--device', default='cpu', help='torch device. Default: cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args(argv)
    if not 0.0 <= args.score_thr <= 1.0:
        parser.error(f'--score-thr must lie in [0, 1], got {args.score_thr}')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    import mmcv
    import torch
    from mmengine.runner import load_checkpoint

    if not osp.isfile(args.image):
        raise UsageError(f'image {args.image!r} does not exist')
    image_bgr = mmcv.imread(args.image)
    if image_bgr is None:
        raise UsageError(f'{args.image!r} is not an image file that OpenCV can read')
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        raise UsageError(f'--out {args.out}: folder {out_dir} does not exist')
    cfg = load_config(args.config, args.cfg_options)
    if cfg.default_scope != 'mmdet':
        raise UsageError(f'{args.config} is a {cfg.default_scope} config; this demo detects '
                         'objects with mmdet configs')
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.init_cfg = None  # the checkpoint brings every weight
    model = build_model(cfg)
    check_checkpoint(model, args.checkpoint, args.config, 'the demo')
    checkpoint = load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')

    from mmdet.apis import inference_detector
    from mmdet.registry import DATASETS, VISUALIZERS
    meta = (checkpoint.get('meta') or {}).get('dataset_meta')
    if not meta:
        dataset = cfg.test_dataloader.dataset
        meta = dataset.get('metainfo') or getattr(DATASETS.get(dataset.type), 'METAINFO', {})
    model.dataset_meta = dict(meta)
    model.cfg = cfg
    model.to(torch.device(args.device)).eval()
    result = inference_detector(model, image_bgr)

    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='det_demo'))
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample('result', mmcv.bgr2rgb(image_bgr), result, draw_gt=False,
                              pred_score_thr=args.score_thr, out_file=args.out)
    instances = result.pred_instances
    keep = instances.scores >= args.score_thr
    classes = model.dataset_meta.get('classes') or ()
    print(f'{args.image}: {int(keep.sum())} detections scoring at least {args.score_thr}')
    for score, label, box in zip(instances.scores[keep], instances.labels[keep],
                                 instances.bboxes[keep]):
        name = classes[label] if label < len(classes) else f'class {int(label)}'
        corners = ', '.join(f'{v:.0f}' for v in box.tolist())
        print(f'  {name:<16} {score:.3f}  [{corners}]')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(run_tool(main))
