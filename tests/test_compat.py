"""mmpyconv.compat: the mmaction2 1.2.0 missing-DRN workaround (open-mmlab/mmaction2#2714)."""
import os
import subprocess
import sys
import textwrap

import pytest


def make_broken_mmaction(root):
    """A package laid out like the released mmaction2 1.2.0: localizers imports a missing drn."""
    files = {
        'mmaction/__init__.py': '',
        'mmaction/models/__init__.py': 'from .localizers import *  # noqa\n',
        'mmaction/models/localizers/__init__.py': 'from .drn.drn import DRN  # noqa\n',
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run(code, root):
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_fake_package_reproduces_the_defect(tmp_path):
    make_broken_mmaction(tmp_path)
    result = run('import mmaction.models', tmp_path)
    assert result.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in result.stderr


def test_import_mmpyconv_patches_in_memory(tmp_path):
    make_broken_mmaction(tmp_path)
    result = run('''
        import mmpyconv
        import mmaction.models
        from mmaction.models.localizers import DRN
        try:
            DRN()
        except NotImplementedError as e:
            print(e)
        ''', tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'issues/2714' in result.stdout
    assert not (tmp_path / 'mmaction/models/localizers/drn').exists()


def test_fix_installed_writes_placeholder_package(tmp_path):
    make_broken_mmaction(tmp_path)
    result = run('''
        from mmpyconv.compat import fix_installed_mmaction_drn
        print(fix_installed_mmaction_drn())
        print(fix_installed_mmaction_drn())
        ''', tmp_path)
    assert result.returncode == 0, result.stderr
    written, second = result.stdout.split()
    assert written == str(tmp_path / 'mmaction/models/localizers/drn')
    assert second == 'None'  # idempotent
    # Now a plain import works, without mmpyconv.
    result = run('''
        import mmaction.models
        from mmaction.models.localizers.drn.drn import DRN
        DRN()
        ''', tmp_path)
    assert 'NotImplementedError' in result.stderr and 'issues/2714' in result.stderr


def test_patch_is_a_no_op_without_mmaction(tmp_path):
    """Where mmaction2 cannot be found, nothing is patched; the same broken package, once
    visible, is (so the first half cannot pass by accident)."""
    make_broken_mmaction(tmp_path)
    result = run('''
        import importlib.util, sys
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == 'mmaction' else real(name, *a)
        import mmpyconv
        from mmpyconv.compat import patch_mmaction_drn
        assert 'mmaction.models.localizers.drn' not in sys.modules
        assert patch_mmaction_drn() is False
        importlib.util.find_spec = real
        assert patch_mmaction_drn() is True
        assert 'mmaction.models.localizers.drn' in sys.modules
        print('ok')
        ''', tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr


@pytest.mark.parametrize('module', ['mmpretrain.models', 'mmdet.models', 'mmseg.models',
                                    'mmaction.models'])
def test_installed_stack_imports(module):
    result = subprocess.run([sys.executable, '-c', f'import {module}'], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
