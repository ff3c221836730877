"""tools/data/make_tiny_coco.py: a COCO-format detection dataset that pycocotools and mmdet's
CocoDataset read, with boxes and masks that agree, reproducible by seed."""
import hashlib
import itertools
import os

import numpy as np
import pytest
from PIL import Image

from tool_harness import load_tool, ok, tool

tiny_coco = load_tool('data/make_tiny_coco.py')
SPLITS = dict(train=6, val=3)


def digest(folder):
    h = hashlib.sha1()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(root, name), 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('tiny_coco'))
    tiny_coco.write_dataset(folder, SPLITS['train'], SPLITS['val'], 64, seed=0)
    return folder


def load_coco(root, split):
    from pycocotools.coco import COCO
    return COCO(os.path.join(root, 'annotations', f'instances_{split}.json'))


@pytest.mark.parametrize('split', SPLITS)
def test_pycocotools_reads_it(root, split):
    coco = load_coco(root, split)
    categories = coco.loadCats(coco.getCatIds())
    assert [(c['id'], c['name']) for c in categories] == [
        (i + 1, name) for i, name in enumerate(tiny_coco.CLASSES)]
    assert len(coco.getImgIds()) == SPLITS[split]
    for image in coco.loadImgs(coco.getImgIds()):
        with Image.open(os.path.join(root, split, image['file_name'])) as picture:
            assert picture.size == (image['width'], image['height']) == (64, 64)
            assert picture.mode == 'RGB'
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image['id']]))
        assert 1 <= len(anns) <= 3
        for ann in anns:
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0 and ann['area'] > 0
            assert 0 <= x and x + w <= image['width'] and 0 <= y and y + h <= image['height']


@pytest.mark.parametrize('split', SPLITS)
def test_masks_agree_with_boxes_and_image(root, split):
    coco = load_coco(root, split)
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        masks = [coco.annToMask(ann).astype(bool) for ann in anns]
        for ann, mask in zip(anns, masks):
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                                       [x, y, x + w, y + h], atol=1)
        for a, b in itertools.combinations(masks, 2):
            assert not (a & b).any(), 'objects overlap'
        # The image shows the objects where the masks are: each differs in brightness from
        # the background.
        file_name = coco.loadImgs([image_id])[0]['file_name']
        brightness = np.asarray(Image.open(os.path.join(root, split, file_name)),
                                np.float32).mean(-1)
        background = brightness[~np.any(masks, axis=0)].mean()
        for mask in masks:
            assert abs(brightness[mask].mean() - background) > 30


def test_mmdet_coco_dataset_reads_boxes_and_masks(root):
    from mmengine.registry import DATASETS, DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dict(
            type='CocoDataset', data_root=root, ann_file='annotations/instances_train.json',
            data_prefix=dict(img='train/'), metainfo=dict(classes=tiny_coco.CLASSES),
            filter_cfg=dict(filter_empty_gt=True),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]))
        assert len(dataset) == SPLITS['train']
        assert dataset.metainfo['classes'] == tiny_coco.CLASSES
        coco = load_coco(root, 'train')
        for index in range(len(dataset)):
            sample = dataset[index]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[sample['img_id']]))
            assert sample['img'].shape == (64, 64, 3)
            np.testing.assert_allclose(
                sample['gt_bboxes'].numpy(),
                [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)])
            assert sample['gt_bboxes_labels'].tolist() == [a['category_id'] - 1 for a in anns]
            masks = sample['gt_masks'].to_ndarray()
            assert masks.shape == (len(anns), 64, 64)
            assert [int(m.sum()) for m in masks] == [int(coco.annToMask(a).sum()) for a in anns]


def test_reproducible_by_seed(tmp_path):
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        tiny_coco.write_dataset(str(tmp_path / name), 3, 2, 48, seed)
    assert digest(tmp_path / 'a') == digest(tmp_path / 'b') != digest(tmp_path / 'c')
    for split in SPLITS:
        path = os.path.join('annotations', f'instances_{split}.json')
        assert (tmp_path / 'a' / path).read_bytes() != (tmp_path / 'c' / path).read_bytes()


def test_cli_writes_the_layout(tmp_path):
    out = tmp_path / 'tiny_coco'
    output = ok(tool('data/make_tiny_coco.py', str(out), '--train', '4', '--val', '2',
                     '--size', '96', '--seed', '3', timeout=120))
    assert 'wrote 4 training images' in output and '2 validation images' in output
    assert sorted(os.listdir(out)) == ['annotations', 'train', 'val']
    assert sorted(os.listdir(out / 'annotations')) == ['instances_train.json',
                                                       'instances_val.json']
    for split, count in (('train', 4), ('val', 2)):
        assert sorted(os.listdir(out / split)) == [f'{split}_{i:05d}.png' for i in range(count)]
        assert Image.open(out / split / f'{split}_00000.png').size == (96, 96)
        coco = load_coco(str(out), split)
        assert len(coco.getImgIds()) == count


@pytest.mark.parametrize('argv', [['--size', '16'], ['--train', '0']])
def test_cli_refuses_bad_arguments(tmp_path, argv):
    with pytest.raises(SystemExit):
        tiny_coco.main([str(tmp_path / 'x'), *argv])
    assert not (tmp_path / 'x').exists()
