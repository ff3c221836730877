"""tools/data/make_shapes_dataset.py: an ImageNet-format folder dataset, reproducible."""
import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from tool_harness import load_tool, ok, tool

shapes = load_tool('data/make_shapes_dataset.py')


def digest(folder):
    h = hashlib.sha1()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(root, name), 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def make(root, *args):
    return tool('data/make_shapes_dataset.py', str(root), '--train-per-class', '3',
                '--val-per-class', '2', *args, timeout=120)


def test_layout_and_meta_files(tmp_path):
    output = ok(make(tmp_path / 'a', '--classes', 'star', 'circle', 'ring', '--size', '40'))
    assert 'wrote 9 training and 6 validation images of 3 classes (40x40 px)' in output
    root = tmp_path / 'a'
    assert (root / 'meta' / 'classes.txt').read_text().split() == ['circle', 'ring', 'star']
    for split, count in (('train', 3), ('val', 2)):
        assert sorted(os.listdir(root / split)) == ['circle', 'ring', 'star']
        lines = (root / 'meta' / f'{split}.txt').read_text().split('\n')[:-1]
        assert len(lines) == 3 * count
        for line in lines:
            rel, label = line.split()
            assert rel.split('/')[0] == ['circle', 'ring', 'star'][int(label)]
            image = Image.open(root / split / rel)
            assert image.size == (40, 40) and image.mode == 'RGB'
    # Train and validation images differ (separate random streams).
    train = np.asarray(Image.open(root / 'train' / 'star' / 'star_00000.png'))
    val = np.asarray(Image.open(root / 'val' / 'star' / 'star_00000.png'))
    assert not np.array_equal(train, val)


def test_reproducible_by_seed(tmp_path):
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        shapes.write_dataset(str(tmp_path / name), ['square', 'triangle'], 32, 3, 2, seed)
    assert digest(tmp_path / 'a') == digest(tmp_path / 'b') != digest(tmp_path / 'c')


def test_unknown_class(tmp_path, capsys):
    assert shapes.main([str(tmp_path / 'x'), '--classes', 'circle', 'hexagon']) == 2
    assert "unknown classes ['hexagon']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        shapes.main([str(tmp_path / 'x'), '--size', '4'])
