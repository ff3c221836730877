"""Bad input stops tools/train.py and tools/test.py with a message that says what to fix, before
anything in the work directory is written (the Runner would dump the config over the earlier
copy and start a log as soon as it is built).

Most cases call the tools' ``main`` in this process (the same code path, without a second
interpreter start); one runs the real command to check the exit status and the output.
"""
import hashlib
import os
import sys
import textwrap

import pytest
import torch

from mmpyconv.runner import UsageError

from tool_harness import TOOLS, load_tool, run, write_config

train_tool = load_tool('train.py')
test_tool = load_tool('test.py')


def snapshot(folder):
    state = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                state[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns,
                                                        hashlib.sha1(f.read()).hexdigest())
    return state


@pytest.fixture
def work_dir(tmp_path, test_config):
    """A work directory with an earlier run's files in it."""
    folder = tmp_path / 'work'
    folder.mkdir()
    (folder / os.path.basename(test_config)).write_text('# the earlier run\'s config\n')
    (folder / 'notes.txt').write_text('keep me\n')
    return str(folder)


def refused(main, argv, work_dir, *fragments):
    before = snapshot(work_dir)
    with pytest.raises(UsageError) as info:
        main(argv)
    message = str(info.value)
    print(message)
    for fragment in fragments:
        assert fragment in message, message
    assert snapshot(work_dir) == before, 'the work directory changed'
    return message


def classifier_checkpoint(path, depth):
    """An mmpretrain checkpoint of a PyConvResNet-<depth> classifier (random weights)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='PyConvResNet', depth=depth),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=6, in_channels=512 if depth < 50 else 2048)))
    torch.save(dict(meta=dict(experiment_name=f'pyconvresnet{depth}_run'),
                    state_dict=model.state_dict()), path)
    return str(path)


def test_missing_dataset_folder(tmp_path, work_dir):
    config = write_config(str(tmp_path / 'cfg.py'), str(tmp_path / 'no_such_dataset'))
    message = refused(train_tool.main, [config, '--work-dir', work_dir], work_dir,
                      'train_dataloader.dataset.data_root', 'no_such_dataset', 'no such folder',
                      '--cfg-options')
    assert 'tools/data/' in message


def test_missing_split_folder(tmp_path, shapes_root, work_dir):
    refused(train_tool.main, [
        os.path.join(os.path.dirname(TOOLS), 'configs', 'pyconvresnet',
                     'pyconvresnet18_1xb32_shapes.py'), '--work-dir', work_dir,
        '--cfg-options', f'train_dataloader.dataset.data_root={shapes_root}',
        f'val_dataloader.dataset.data_root={tmp_path}'
    ], work_dir, 'val_dataloader.dataset.data_prefix', "'val'", 'does not exist')


@pytest.mark.parametrize('override, fragments', [
    ('model.backbone.dpeth=34', ["model.backbone has no key 'dpeth'", "did you mean 'depth'"]),
    ('train_dataloader.batch_sise=4', ["has no key 'batch_sise'", "'batch_size'"]),
    ('train_cfg.max_epoch=4', ["train_cfg has no key 'max_epoch'", "'max_epochs'"]),
])
def test_cfg_options_typo(test_config, work_dir, override, fragments):
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--cfg-options', override],
            work_dir, *fragments)


@pytest.mark.parametrize('text, fragments', [
    ("train_dataloder = dict(batch_size=4)",
     ["unknown top-level config key 'train_dataloder'", "'train_dataloader'"]),
    ("model = dict(backbone=dict(frozen_stage=1))",
     ['the model of the config cannot be built', "PyConvResNet takes no argument 'frozen_stage'",
      "'frozen_stages'"]),
    ("model = dict(backbone=dict(type='PyConvResnet'))",
     ['PyConvResnet is not in the mmpretrain::model registry', "did you mean 'PyConvResNet'"]),
    ("val_dataloader = dict(dataset=dict(type='CustomDatset'))",
     ["val_dataloader.dataset.type = 'CustomDatset' is not registered in mmpretrain's dataset",
      "did you mean 'CustomDataset'"]),
    ("train_cfg = dict(val_intreval=2)", ["train_cfg.val_intreval", "'val_interval'"]),
    ("train_dataloader = dict(num_worker=0)",
     ["train_dataloader.num_worker", "'num_workers'"]),
    ("train_dataloader = dict(dataset=dict(data_prefx='train'))",
     ['train_dataloader.dataset cannot be built', "takes no argument 'data_prefx'",
      "did you mean 'data_prefix'"]),
    ("train_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'), "
     "dict(type='RandomResizedCrop', scael=32), dict(type='PackInputs')]))",
     ['train_dataloader.dataset cannot be built',
      "RandomResizedCrop takes no argument 'scael'", "'scale'"]),
    ("optim_wrapper = dict(optimizer=dict(momentun=0.9))",
     ['optim_wrapper.optimizer.momentun', "'momentum'"]),
    ("val_evaluator = dict(type='Accuracy', top_k=(1, ))",
     ['val_evaluator.top_k', "'topk'"]),
    ("model = dict(backbone=dict(depth=19))",
     ['cannot be built', 'invalid depth 19', 'valid depths']),
])
def test_config_file_typo(tmp_path, test_config, work_dir, text, fragments):
    config = tmp_path / 'typo.py'
    config.write_text(f'_base_ = {test_config!r}\n{text}\n')
    refused(train_tool.main, [str(config), '--work-dir', work_dir], work_dir, *fragments)


def test_shipped_tiny_config_has_no_false_alarm(test_config):
    """The checks pass on a good config (they would refuse everything if they were wrong)."""
    from mmpyconv.runner import apply_common_args, load_config, preflight
    cfg = load_config(test_config)
    apply_common_args(cfg, test_config, None, 'none')
    preflight(cfg, test_config, ['train_dataloader', 'val_dataloader'])


def test_wrong_architecture_checkpoint_for_test(tmp_path, test_config, work_dir):
    checkpoint = classifier_checkpoint(tmp_path / 'r34.pth', 34)
    refused(test_tool.main, [test_config, checkpoint, '--work-dir', work_dir], work_dir,
            'does not fit the model', 'tensors the model does not have',
            'backbone.layer1.2.', "'pyconvresnet34_run'")


def test_wrong_architecture_checkpoint_for_resume(tmp_path, test_config, work_dir):
    checkpoint = classifier_checkpoint(tmp_path / 'r50.pth', 50)
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume', checkpoint],
            work_dir, 'does not fit the model', '(resume)')


def test_wrong_architecture_checkpoint_found_by_auto_resume(tmp_path, test_config, work_dir):
    checkpoint = classifier_checkpoint(os.path.join(work_dir, 'epoch_4.pth'), 34)
    with open(os.path.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(checkpoint)
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume'], work_dir,
            'does not fit the model', 'epoch_4.pth')


def test_original_layout_checkpoint_points_to_the_converter(tmp_path, test_config, work_dir):
    state = {'conv1.weight': torch.zeros(64, 3, 7, 7),
             'layer1.0.conv1.conv2_1.weight': torch.zeros(16, 64, 3, 3)}
    path = tmp_path / 'original.pth'
    torch.save(state, path)
    refused(test_tool.main, [test_config, str(path), '--work-dir', work_dir], work_dir,
            "authors' original layout", 'tools/convert/pyconv_to_mmpretrain.py')


def test_missing_checkpoint_and_config(tmp_path, test_config, work_dir):
    refused(test_tool.main, [test_config, str(tmp_path / 'nope.pth'), '--work-dir', work_dir],
            work_dir, 'nope.pth', 'does not exist')
    refused(train_tool.main, [str(tmp_path / 'nope.py'), '--work-dir', work_dir], work_dir,
            'nope.py', 'does not exist')


def test_show_dir_with_a_bad_interval(tmp_path, test_config, work_dir):
    checkpoint = classifier_checkpoint(tmp_path / 'r18.pth', 18)
    refused(test_tool.main, [test_config, checkpoint, '--work-dir', work_dir, '--show-dir',
                             str(tmp_path / 'vis'), '--interval', '0'], work_dir,
            '--interval 0', 'positive')
    assert not (tmp_path / 'vis').exists()


def test_amp_without_gpu(test_config, work_dir):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU: mixed precision is possible here')
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--amp'], work_dir,
            'mixed precision', 'needs a CUDA')


def test_real_command_exits_2_with_the_message_only(tmp_path, work_dir):
    config = write_config(str(tmp_path / 'cfg.py'), str(tmp_path / 'absent'))
    before = snapshot(work_dir)
    result = run([sys.executable, os.path.join(TOOLS, 'train.py'), config, '--work-dir',
                  work_dir])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith('error: ')
    assert 'absent' in result.stderr and 'Traceback' not in result.stderr
    assert snapshot(work_dir) == before


def test_config_without_default_scope(tmp_path, work_dir):
    config = tmp_path / 'scopeless.py'
    config.write_text(textwrap.dedent('''\
        model = dict(type='ImageClassifier')
        train_dataloader = dict()
        '''))
    refused(train_tool.main, [str(config), '--work-dir', work_dir], work_dir,
            'sets no default_scope', "default_scope = 'mmpretrain'")


def test_every_missing_path_in_one_message(tmp_path, work_dir):
    """Dataset folders and pretrained checkpoints that do not exist, named together."""
    config = write_config(str(tmp_path / 'cfg.py'), str(tmp_path / 'no_such_dataset'), extra=f'''
        model = dict(backbone=dict(init_cfg=dict(
            type='Pretrained', checkpoint={str(tmp_path / 'no_such_weights.pth')!r})))
        ''')
    message = refused(train_tool.main, [config, '--work-dir', work_dir], work_dir,
                      '3 paths of the config do not exist', 'train_dataloader.dataset.data_root',
                      'val_dataloader.dataset.data_root',
                      'model.backbone.init_cfg.checkpoint', 'no_such_weights.pth')
    assert '(3) model.backbone.init_cfg.checkpoint' in message and '\n' not in message


def test_resnet_weights_for_a_pyconv_backbone(tmp_path, test_config, work_dir):
    """A plain ResNet-18's file fills most tensor names of PyConvResNet-18 but no pyramid."""
    import torchvision
    weights = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    config = tmp_path / 'resnet_init.py'
    config.write_text(f'_base_ = {test_config!r}\nmodel = dict(backbone=dict(init_cfg=dict('
                      f'type="Pretrained", checkpoint={str(weights)!r})))\n')
    refused(train_tool.main, [str(config), '--work-dir', work_dir], work_dir,
            'resnet18.pth fills', 'pyramid-level tensors of PyConvResNet',
            'checkpoint of another network', 'init_cfg=None')
