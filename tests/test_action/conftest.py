"""The video tests: mmaction2's default scope, and one small synthetic Kinetics-layout set."""
import os

import pytest

from tool_harness import load_tool

pytest.importorskip('mmaction')


@pytest.fixture(autouse=True)
def mmaction_scope():
    """mmaction2's recognizers build their heads and preprocessors by name: whatever scope an
    earlier test left, these run in mmaction2's."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmaction'):
        yield


@pytest.fixture(scope='session')
def video_workspace(tmp_path_factory) -> str:
    """A folder holding data/tiny_kinetics (make_tiny_kinetics.py's defaults), where the tiny
    configs find it by their relative data_root."""
    root = str(tmp_path_factory.mktemp('video'))
    load_tool('data/make_tiny_kinetics.py').write_dataset(
        os.path.join(root, 'data', 'tiny_kinetics'))
    return root
