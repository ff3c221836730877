"""The tools' top-level typo check against what the installed toolboxes really ship and read."""
import ast
import glob
import importlib.util
import inspect
import os

import pytest

from mmpyconv.runner.config_check import runner_keys, top_level_typo

TOOLBOXES = ('mmpretrain', 'mmdet', 'mmseg', 'mmaction')


def packaged_top_level_names():
    """Every name assigned at the top of a config the installed toolboxes ship."""
    names = set()
    for toolbox in TOOLBOXES:
        spec = importlib.util.find_spec(toolbox)
        root = os.path.join(list(spec.submodule_search_locations)[0], '.mim', 'configs')
        files = glob.glob(os.path.join(root, '**', '*.py'), recursive=True)
        assert files, f'{toolbox} ships no configs at {root}'
        for path in files:
            for node in ast.parse(open(path, encoding='utf-8').read()).body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_known_keys_come_from_the_runner():
    from mmengine.runner import Runner
    params = set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}
    assert params <= runner_keys()
    # read from the config by Runner methods, not passed to __init__
    assert {'model_wrapper_cfg', 'compile', 'sync_bn'} <= runner_keys()


def test_no_packaged_config_is_flagged():
    names = packaged_top_level_names()
    assert len(names) > 100
    # A full config has the Runner's keys; its own variables must not pass for typos of them.
    flagged = {n: top_level_typo(n, runner_keys()) for n in names}
    assert not {n: m for n, m in flagged.items() if m}


@pytest.mark.parametrize('typo,meant', [
    ('train_dataloder', 'train_dataloader'), ('optim_wraper', 'optim_wrapper'),
    ('param_schedular', 'param_scheduler'), ('default_hook', 'default_hooks'),
    ('val_evalutor', 'val_evaluator'), ('custom_import', 'custom_imports'),
    ('randomnes', 'randomness'), ('model_wraper_cfg', 'model_wrapper_cfg'),
])
def test_typos_are_flagged(typo, meant):
    assert top_level_typo(typo, runner_keys() - {meant}) == meant
    # One slip in a long key is flagged even when the config also has the right key (a base
    # config defines it, the typo was meant to override it).
    if len(meant) >= 10:
        assert top_level_typo(typo, runner_keys()) == meant
