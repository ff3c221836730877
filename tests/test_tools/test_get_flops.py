"""tools/analysis/get_flops.py: a table of params and FLOPs, for archs and config files."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'analysis', 'get_flops.py')


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def row(stdout, name):
    lines = [line for line in stdout.splitlines() if line.startswith(name + ' ')]
    assert len(lines) == 1, stdout
    return [cell.strip() for cell in lines[0].split('|')]


def test_arch_table():
    result = run('pyconvresnet18', 'resnet18', '--shape', '64', '96')
    assert result.returncode == 0, result.stderr
    pyconv = row(result.stdout, 'pyconvresnet18')
    assert pyconv[1] == '3x64x96' and pyconv[2] == '5,911,976'
    resnet = row(result.stdout, 'resnet18')
    assert resnet[2] == '11,689,512'  # torchvision's ResNet-18
    # FLOPs scale with the input area: PyConvResNet-18 is 0.87 GFLOPs at 224x224.
    assert float(pyconv[4]) == pytest.approx(0.87 * 64 * 96 / 224**2, abs=0.01)


def test_config_file(tmp_path):
    cfg = tmp_path / 'cls.py'
    cfg.write_text(
        "custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)\n"
        "default_scope = 'mmpretrain'\n"
        "model = dict(type='ImageClassifier',\n"
        "             backbone=dict(type='PyConvHGResNet', depth=50,\n"
        "                           init_cfg=dict(type='Pretrained', checkpoint='missing.pth')),\n"
        "             neck=dict(type='GlobalAveragePooling'),\n"
        "             head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))\n")
    result = run(str(cfg), '--shape', '64')
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, str(cfg))[2] == '25,234,728'
    result = run(str(cfg), '--cfg-options', 'model.head.num_classes=10')
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, str(cfg))[2] == f'{25_234_728 - 990 * 2049:,}'


@pytest.mark.parametrize('args,message', [
    (['pyconvnet50'], 'unknown model'),
    (['missing_config.py'], 'does not exist'),
    (['pyconvresnet18', '--shape', '1', '2', '3'], '--shape'),
])
def test_bad_input(args, message):
    result = run(*args)
    assert result.returncode != 0
    assert message in result.stderr


def test_two_stage_detector_config():
    """A Faster R-CNN config counts (its RPN needs a data sample, which the tool binds); the
    count grows with the input, and the parameters are the metafile's."""
    import yaml
    config = os.path.join('configs', 'pyconvdet', 'faster-rcnn_pyconvresnet50_fpn_1x_coco.py')
    with open(os.path.join(ROOT, 'configs', 'pyconvdet', 'metafile.yml')) as f:
        (entry, ) = [m for m in yaml.safe_load(f)['Models'] if m['Config'] == config]
    small, large = (run(config, '--shape', *shape) for shape in (['128'], ['192']))
    assert small.returncode == 0 and large.returncode == 0, small.stderr + large.stderr
    assert row(small.stdout, config)[2] == f"{entry['Metadata']['Parameters']:,}"
    assert float(row(large.stdout, config)[4]) > float(row(small.stdout, config)[4]) > 0
