"""Fixtures of the classification tool tests: a tiny shapes dataset, a tiny config and one short
training run that several tests read (checkpoints, logs). 32x32 images, a PyConvResNet-18, three
iterations per epoch.
"""
from typing import Dict

import pytest

from tool_harness import CLASSES, TRAIN_PER_CLASS, VAL_PER_CLASS, load_tool, ok, tool, write_config


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('data') / 'shapes')
    load_tool('data/make_shapes_dataset.py').write_dataset(
        root, CLASSES, size=32, train_per_class=TRAIN_PER_CLASS, val_per_class=VAL_PER_CLASS,
        seed=0)
    return root


@pytest.fixture(scope='session')
def test_config(tmp_path_factory, shapes_root) -> str:
    return write_config(str(tmp_path_factory.mktemp('configs') / 'tiny.py'), shapes_root)


@pytest.fixture(scope='session')
def trained(tmp_path_factory, test_config) -> Dict[str, object]:
    """One uninterrupted run of EPOCHS epochs, a checkpoint after every epoch."""
    work_dir = str(tmp_path_factory.mktemp('trained'))
    output = ok(tool('train.py', test_config, '--work-dir', work_dir, timeout=300))
    return dict(work_dir=work_dir, output=output, config=test_config)


@pytest.fixture(scope='session')
def dist_config(tmp_path_factory, test_config) -> str:
    """The tiny config for one epoch on 2 processes, each rank dumping its weights
    (helpers/rank_weights_hook.py) so that the tests can compare the ranks."""
    path = tmp_path_factory.mktemp('dist') / 'dist.py'
    path.write_text(
        f'_base_ = {test_config!r}\n'
        "custom_imports = dict(imports=['mmpyconv', 'rank_weights_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='DumpRankWeightsHook')]\n"
        'train_cfg = dict(max_epochs=1)\n')
    return str(path)
