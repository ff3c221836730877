"""Segmentation data checks for mmseg pipelines (imports mmseg; loaded by the seg configs).

:class:`CheckSegMap` stops a run at the first image whose ground truth is missing or does not
match the image, naming both files. Without it, mmseg fails later and less clearly: a missing
mask is a bare ``FileNotFoundError`` deep in the data loader, and a mask of another size is
cropped alongside the image during training or breaks the metric at validation.
"""
import io
import os.path as osp
from typing import Dict, Optional, Tuple

import mmengine.fileio as fileio
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image

__all__ = ['CheckSegMap']


@TRANSFORMS.register_module()
class CheckSegMap(BaseTransform):
    """Check that a sample's segmentation mask exists and has the image's size.

    Place it after ``LoadImageFromFile`` and before the first transform that changes the image
    size; it reads only the mask file's header. In a test pipeline without ground truth (no
    ``seg_map_path`` in the sample), it does nothing.

    Required keys: ``img_path``, ``ori_shape``; optional: ``seg_map_path``.

    Args:
        backend_args (dict, optional): File backend arguments, as ``LoadAnnotations``'s.
            Default: None (local files).

    Raises:
        FileNotFoundError: the image has no mask file.
        ValueError: the mask's height and width differ from the image's.
    """

    def __init__(self, backend_args: Optional[Dict] = None):
        super().__init__()
        self.backend_args = backend_args

    def transform(self, results: Dict) -> Dict:
        seg_map_path = results.get('seg_map_path')
        if seg_map_path is None:
            return results
        img_path = results.get('img_path', '<in-memory image>')
        if not fileio.exists(seg_map_path, backend_args=self.backend_args):
            raise FileNotFoundError(
                f'image {img_path} has no segmentation mask: expected {seg_map_path}. Every '
                'image needs a mask of the same name (ADE20K layout: images/<split>/NAME.jpg '
                f'-> annotations/<split>/NAME.png, in {osp.dirname(seg_map_path)}); add it, or '
                'remove the image')
        mask_hw = self._mask_size(seg_map_path)
        image_hw: Tuple[int, int] = tuple(results['ori_shape'][:2])
        if mask_hw != image_hw:
            raise ValueError(
                f'mask {seg_map_path} is {mask_hw[0]}x{mask_hw[1]} (HxW) but its image '
                f'{img_path} is {image_hw[0]}x{image_hw[1]}: a mask must label every pixel of '
                'its image. Regenerate or resize the mask (nearest-neighbour, so class ids '
                'stay ids)')
        return results

    def _mask_size(self, path: str) -> Tuple[int, int]:
        data = fileio.get(path, backend_args=self.backend_args)
        try:
            with Image.open(io.BytesIO(data)) as mask:
                width, height = mask.size
        except OSError as e:
            raise ValueError(f'mask {path} is not a readable image: {e}') from e
        return height, width

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'
