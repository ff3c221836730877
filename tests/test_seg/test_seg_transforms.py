"""CheckSegMap, through mmseg's ADE20KDataset as the configs use it, and the tiny-data writer."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mmpyconv.datasets.seg_transforms  # noqa: F401  (registers CheckSegMap)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAKE_DATA = osp.join(REPO, 'tools', 'data', 'make_tiny_ade20k.py')
ADE_IDS = {0, 2, 3, 5, 7, 10, 21}  # "other" and the six classes the writer draws


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_ade20k'))
    result = subprocess.run([sys.executable, MAKE_DATA, root, '--num-train', '6', '--num-val',
                             '3', '--size', '40', '56', '--seed', '3'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'wrote 6 training and 3 validation scenes (40x56 px' in result.stdout
    return root


def dataset(root, split='training', pipeline=None):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    pipeline = pipeline or [
        dict(type='LoadImageFromFile'),
        dict(type='CheckSegMap'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs'),
    ]
    return DATASETS.build(dict(
        type='ADE20KDataset', data_root=root, pipeline=pipeline,
        data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}')))


def test_writer_makes_ade20k_layout(data_root):
    for split, count in (('training', 6), ('validation', 3)):
        images = sorted(os.listdir(osp.join(data_root, 'images', split)))
        masks = sorted(os.listdir(osp.join(data_root, 'annotations', split)))
        assert len(images) == count and all(name.endswith('.jpg') for name in images)
        assert [m[:-4] for m in masks] == [i[:-4] for i in images]
        for name in masks:
            mask = Image.open(osp.join(data_root, 'annotations', split, name))
            assert mask.mode == 'L' and mask.size == (56, 40)
            assert set(np.unique(np.asarray(mask))) <= ADE_IDS
            image = Image.open(osp.join(data_root, 'images', split, name[:-4] + '.jpg'))
            assert image.mode == 'RGB' and image.size == (56, 40)


def test_writer_is_reproducible_and_learnable(data_root, tmp_path):
    again = str(tmp_path / 'again')
    subprocess.run([sys.executable, MAKE_DATA, again, '--num-train', '6', '--num-val', '3',
                    '--size', '40', '56', '--seed', '3'], check=True, capture_output=True,
                   timeout=120)
    name = 'annotations/training/tiny_train_00002.png'
    assert np.array_equal(np.asarray(Image.open(osp.join(again, name))),
                          np.asarray(Image.open(osp.join(data_root, name))))
    # Every class has its own colour: the mean colours of the classes are far apart.
    sums, counts = {}, {}
    for i in range(6):
        stem = f'tiny_train_{i:05d}'
        image = np.asarray(Image.open(f'{data_root}/images/training/{stem}.jpg'), np.float64)
        mask = np.asarray(Image.open(f'{data_root}/annotations/training/{stem}.png'))
        for c in np.unique(mask):
            if c:
                sums[c] = sums.get(c, 0) + image[mask == c].sum(0)
                counts[c] = counts.get(c, 0) + (mask == c).sum()
    means = {c: sums[c] / counts[c] for c in sums}
    assert len(means) >= 4
    gaps = [np.abs(means[a] - means[b]).max() for a in means for b in means if a < b]
    assert min(gaps) > 30


def test_dataset_reads_ade20k_labels(data_root):
    ds = dataset(data_root)
    assert len(ds) == 6
    sample = ds[0]
    labels = set(np.unique(sample['data_samples'].gt_sem_seg.data.numpy()).tolist())
    # reduce_zero_label: ADE20K id c -> class c - 1, "other" (0) -> 255 (ignored)
    assert labels <= {255} | {c - 1 for c in ADE_IDS if c}
    assert sample['inputs'].shape[1:] == (40, 56)


def test_image_without_mask_is_a_clear_error(data_root, tmp_path):
    import shutil
    root = str(tmp_path / 'copy')
    shutil.copytree(data_root, root)
    os.remove(osp.join(root, 'annotations', 'training', 'tiny_train_00001.png'))
    ds = dataset(root)
    ds[0]
    with pytest.raises(FileNotFoundError,
                       match=r'tiny_train_00001\.jpg has no segmentation mask: expected '
                       r'.*annotations/training/tiny_train_00001\.png'):
        ds[1]


def test_mask_of_another_size_is_a_clear_error(data_root, tmp_path):
    import shutil
    root = str(tmp_path / 'copy')
    shutil.copytree(data_root, root)
    path = osp.join(root, 'annotations', 'validation', 'tiny_val_00002.png')
    Image.open(path).resize((28, 20), Image.NEAREST).save(path)
    test_pipeline = [  # as the configs' test pipeline: the mask loads after the resize
        dict(type='LoadImageFromFile'),
        dict(type='CheckSegMap'),
        dict(type='Resize', scale=(112, 112), keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs'),
    ]
    ds = dataset(root, 'validation', test_pipeline)
    ds[1]
    with pytest.raises(ValueError, match=r'tiny_val_00002\.png is 20x28 \(HxW\) but its image '
                       r'.*tiny_val_00002\.jpg is 40x56'):
        ds[2]


def test_check_does_nothing_without_ground_truth(data_root):
    from mmseg.registry import TRANSFORMS
    check = TRANSFORMS.build(dict(type='CheckSegMap'))
    results = dict(img_path='x.jpg', ori_shape=(4, 4))
    assert check(results) is results


def test_unreadable_mask_is_a_clear_error(tmp_path):
    from mmseg.registry import TRANSFORMS
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not a png')
    check = TRANSFORMS.build(dict(type='CheckSegMap'))
    with pytest.raises(ValueError, match='bad.png is not a readable image'):
        check(dict(img_path='x.jpg', seg_map_path=str(bad), ori_shape=(4, 4)))
