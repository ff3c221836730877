"""Every segmentation test runs in mmseg's default scope, whatever an earlier test (the tools'
in-process preflight, an mmpretrain test) left as the process-wide scope: mmseg's heads build
their losses by name, and under another scope the name finds another toolbox's class."""
import pytest


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield
