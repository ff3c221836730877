"""The model index: after ``import mmpyconv`` (before or after ``import mmpretrain``),
``mmpretrain.get_model`` builds every model the metafiles name, from the checkout and from an
installed wheel, and ``mim search mmpyconv`` lists them from the wheel. Each scenario runs in a
fresh interpreter, since the registration hooks into imports."""
import functools
import glob
import json
import os
import shutil
import sys
from typing import List, Optional, Tuple

import pytest
import yaml

from tool_harness import ROOT, ok, run

pytest.importorskip('mmpretrain')

# Prints what the tests check, as JSON on the last line. argv: which import comes first, the
# model to build, the names to look up in ModelHub.
PROBE = r'''
import json, os, sys
first, built, names = sys.argv[1], sys.argv[2], sys.argv[3:]
report = {}
if first == 'mmpyconv':
    import mmpyconv
    report['toolboxes'] = [m for m in ('mmpretrain', 'mmdet', 'mmseg', 'mmaction')
                           if m in sys.modules]
    import mmpretrain
else:
    import mmpretrain
    import mmpyconv
from mmpretrain.apis.model import ModelHub
import mmpyconv.hub

report['mmpyconv'] = os.path.dirname(mmpyconv.__file__)
report['finders_left'] = [f.module_name for f in sys.meta_path
                          if getattr(f, 'module_name', '').startswith('mmpretrain')]
model = mmpretrain.get_model(built)
report['backbone'] = [type(model.backbone).__name__, model.backbone.depth]
report['config'] = model._config.filename
known = set(mmpretrain.list_models())
report['again'] = mmpyconv.hub.register_with_mmpretrain()  # False after a failure
report['same_after_again'] = set(mmpretrain.list_models()) == known
# ModelHub keeps config paths as strings until get(); reading them loads no config.
report['hub'] = {name: ModelHub._models_dict[name].config
                 for name in ModelHub._models_dict if name in names}
print(json.dumps(report))
'''


def metafile_models() -> List[Tuple[str, str]]:
    """(model name, config path) of every model of the metafiles the model index imports."""
    with open(os.path.join(ROOT, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    models = []
    for metafile in metafiles:
        with open(os.path.join(ROOT, metafile)) as f:
            models += [(m['Name'], m['Config']) for m in yaml.safe_load(f)['Models']]
    return models


MODELS = dict(metafile_models())
BUILT = 'pyconvresnet18_8xb32_in1k'  # a PyConvResNet-18: quick to build


@functools.lru_cache(maxsize=None)
def probe(first: str, pythonpath: Optional[str] = None) -> dict:
    """PROBE's report; from the checkout, or from the package installed in ``pythonpath``."""
    cwd = ROOT if pythonpath is None else os.path.dirname(pythonpath)
    output = ok(run([sys.executable, '-c', PROBE, first, BUILT, *MODELS], cwd=cwd,
                    env=dict(PYTHONPATH=pythonpath), timeout=180))
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(params=['mmpyconv', 'mmpretrain'], ids=lambda first: f'{first}-first')
def report(request) -> dict:
    return probe(request.param)


def test_model_index_imports_every_metafile():
    with open(os.path.join(ROOT, 'model-index.yml')) as f:
        imported = yaml.safe_load(f)['Import']
    found = glob.glob(os.path.join(ROOT, 'configs', '*', 'metafile.yml'))
    assert sorted(imported) == sorted(os.path.relpath(p, ROOT) for p in found)
    assert len(MODELS) == len(metafile_models())  # no name twice: ModelHub refuses that


def test_import_mmpyconv_imports_no_toolbox():
    assert probe('mmpyconv')['toolboxes'] == []


def test_get_model_builds_the_named_model(report):
    assert report['backbone'] == ['PyConvResNet', 18]
    assert report['config'] == os.path.join(ROOT, MODELS[BUILT])
    assert report['mmpyconv'] == os.path.join(ROOT, 'mmpyconv')


def test_every_metafile_model_is_in_the_hub(report):
    assert sorted(report['hub']) == sorted(MODELS)
    for name, config in report['hub'].items():
        assert config == os.path.join(ROOT, MODELS[name]) and os.path.isfile(config), name


def test_registration_is_idempotent_and_the_finder_is_gone(report):
    assert report['again'] is True
    assert report['same_after_again']
    assert report['finders_left'] == []


def test_a_name_clash_is_reported_not_raised(tmp_path):
    """Another model index that took one of the names: imports work, the log says what clashed."""
    (tmp_path / 'model-index.yml').write_text(f'Models:\n- Name: {BUILT}\n  Config: other.py\n')
    code = ('import mmpretrain\n'
            'from mmpretrain.apis.model import ModelHub\n'
            f'ModelHub.register_model_index({str(tmp_path / "model-index.yml")!r})\n'
            'import mmpyconv\n'
            'print("registered:", mmpyconv.hub.register_with_mmpretrain())\n')
    output = ok(run([sys.executable, '-c', code]))
    assert 'registered: False' in output
    assert 'could not register' in output and BUILT in output


@pytest.fixture(scope='module')
def wheel_site(tmp_path_factory) -> str:
    """The repository built as a wheel and installed into a folder of its own."""
    tmp = tmp_path_factory.mktemp('wheel')
    src, dist, site = str(tmp / 'src'), str(tmp / 'dist'), str(tmp / 'site')
    # A copy, so that the build neither writes into the checkout nor packs a stale build/.
    outside = {'.git', '.venv', 'build', 'dist', 'work_dirs', 'data', 'checkpoints',
               '.pytest_cache'}

    def ignore(folder, names):
        at_root = os.path.abspath(folder) == ROOT
        return [n for n in names if n == '__pycache__' or at_root and (
            n in outside or n.endswith('.egg-info'))]

    shutil.copytree(ROOT, src, ignore=ignore)
    env = dict(PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    ok(run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', src,
            '-w', dist], cwd=str(tmp), env=env))
    (wheel, ) = os.listdir(dist)
    ok(run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--target', site,
            os.path.join(dist, wheel)], cwd=str(tmp), env=env))
    return site


def test_wheel_carries_the_mim_files(wheel_site):
    mim = os.path.join(wheel_site, 'mmpyconv', '.mim')
    assert sorted(os.listdir(mim)) == ['configs', 'model-index.yml', 'tools']
    for config in MODELS.values():
        assert os.path.isfile(os.path.join(mim, config)), config
    assert os.path.isfile(os.path.join(mim, 'tools', 'train.py'))


def test_mim_search_lists_the_models(wheel_site):
    mim = shutil.which('mim', path=os.path.dirname(sys.executable))
    assert mim is not None, 'openmim is not installed in this venv: run bash tools/install.sh'
    output = ok(run([mim, 'search', 'mmpyconv'], cwd=os.path.dirname(wheel_site),
                    env=dict(PYTHONPATH=wheel_site)))
    listed = {line.split(':', 1)[1].strip() for line in output.splitlines()
              if line.startswith('config id:')}
    assert listed == set(MODELS)


def test_get_model_from_the_installed_wheel(wheel_site):
    result = probe('mmpyconv', wheel_site)
    mim = os.path.join(wheel_site, 'mmpyconv', '.mim')
    assert result['mmpyconv'] == os.path.join(wheel_site, 'mmpyconv')
    assert result['backbone'] == ['PyConvResNet', 18]
    assert result['config'] == os.path.join(mim, MODELS[BUILT])
    assert sorted(result['hub']) == sorted(MODELS)
    assert all(config.startswith(mim + os.sep) for config in result['hub'].values())
