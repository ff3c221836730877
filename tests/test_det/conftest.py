"""Every detection test runs in mmdet's default scope, whatever an earlier test (the tools'
in-process preflight, an mmpretrain or mmseg test) left as the process-wide scope: mmdet's
detectors build their heads, losses, anchor generators and RoI extractors by name, and under
another scope a name finds another toolbox's class or none."""
import pytest


@pytest.fixture(autouse=True)
def mmdet_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield
