"""Bad input stops tools/train.py and tools/test.py with a message that says what to fix, before
anything in the work directory is written (the Runner would dump the config over the earlier
copy and start a log as soon as it is built).

Most cases call the tools' ``main`` in this process (the same code path, without a second
interpreter start); one runs the real command to check the exit status and the output.
"""
import os
import sys
import textwrap

import pytest
import torch

from tool_harness import TOOLS, earlier_run, load_tool, refused, run, snapshot, write_config

train_tool = load_tool('train.py')
test_tool = load_tool('test.py')
SHAPES_CONFIG = os.path.join(os.path.dirname(TOOLS), 'configs', 'pyconvresnet',
                             'pyconvresnet18_1xb32_shapes.py')
NOT_A_CHECKPOINT = 'not a checkpoint: cannot be unpickled; was it fully written?'


@pytest.fixture
def work_dir(tmp_path, test_config):
    """A work directory with an earlier run's files in it."""
    return earlier_run(tmp_path / 'work', os.path.basename(test_config))


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
        SHAPES_CONFIG, '--work-dir', work_dir,
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
    """Dataset folders and pretrained checkpoints that do not exist, named together; the
    loaders that share a data root share its sentence."""
    config = write_config(str(tmp_path / 'cfg.py'), str(tmp_path / 'no_such_dataset'), extra=f'''
        model = dict(backbone=dict(init_cfg=dict(
            type='Pretrained', checkpoint={str(tmp_path / 'no_such_weights.pth')!r})))
        ''')
    message = refused(train_tool.main, [config, '--work-dir', work_dir], work_dir,
                      '2 paths of the config do not exist',
                      '(1) train_dataloader.dataset.data_root and '
                      'val_dataloader.dataset.data_root = ', '--cfg-options data_root=PATH',
                      '(2) model.backbone.init_cfg.checkpoint', 'no_such_weights.pth')
    assert message.count('no_such_dataset') == 2  # the value and where it was looked for


def test_shipped_config_without_data_names_every_split_and_one_fix(tmp_path, shapes_root,
                                                                   work_dir):
    """No dataset: one message for train and val, whose fix (the config's data_root) is the
    only change the next run needs."""
    refused(train_tool.main, [SHAPES_CONFIG, '--work-dir', work_dir, '--cfg-options',
                              f'data_root={tmp_path / "absent"}'], work_dir,
            'train_dataloader.dataset.data_root and val_dataloader.dataset.data_root',
            'no such folder', '--cfg-options data_root=PATH')
    from mmpyconv.runner import apply_common_args, load_config, preflight
    cfg = load_config(SHAPES_CONFIG, {'data_root': shapes_root})
    apply_common_args(cfg, SHAPES_CONFIG, work_dir, 'none')
    preflight(cfg, SHAPES_CONFIG, ['train_dataloader', 'val_dataloader'])


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


# --resume means resume (issue 13, item 2).

def test_resume_with_no_checkpoint_in_the_work_dir(work_dir, test_config):
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume'], work_dir,
            '--resume (the latest checkpoint of the work directory', 'nothing to resume',
            'no checkpoint there', 'drop --resume to start a new run')


def test_resume_without_a_work_dir(tmp_path, test_config):
    absent = tmp_path / 'never_trained'
    refused(train_tool.main, [test_config, '--work-dir', str(absent), '--resume'], tmp_path,
            'nothing to resume, the work directory does not exist')
    assert not absent.exists()


def test_resume_a_folder_without_checkpoints(tmp_path, test_config, work_dir):
    folder = tmp_path / 'empty_run'
    folder.mkdir()
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume', str(folder)],
            work_dir, f'--resume {folder}: a folder without checkpoints')


def test_resume_a_folder_with_checkpoints_but_no_record(tmp_path, test_config, work_dir):
    folder = tmp_path / 'old_run'
    folder.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        classifier_checkpoint(folder / name, 18)
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume', str(folder)],
            work_dir, 'has checkpoints but no last_checkpoint file',
            f'--resume {folder / "epoch_2.pth"} (the newest)')


def test_resume_a_folder_resumes_its_latest(tmp_path, test_config, work_dir):
    """A folder with mmengine's last_checkpoint record resumes the checkpoint it names (here
    one of another network, refused by name: the folder was resolved to it)."""
    folder = tmp_path / 'old_run'
    folder.mkdir()
    checkpoint = classifier_checkpoint(folder / 'epoch_3.pth', 34)
    (folder / 'last_checkpoint').write_text(checkpoint)
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume', str(folder)],
            work_dir, f'checkpoint {checkpoint} does not fit the model', '(resume)')


def test_resume_weights_without_training_state(tmp_path, test_config, work_dir):
    weights = classifier_checkpoint(tmp_path / 'weights.pth', 18)
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume', weights],
            work_dir, f'--resume {weights}: holds no training state',
            f'--cfg-options load_from={weights}')


def test_resume_a_missing_path(tmp_path, test_config, work_dir):
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--resume',
                              str(tmp_path / 'nope.pth')], work_dir,
            'nope.pth: no such file or folder')


# Tidy refusals (issue 13, item 7).

def garbage(path):
    with open(path, 'wb') as f:
        f.write(os.urandom(3000))
    return str(path)


@pytest.fixture
def truncated_checkpoint(tmp_path):
    whole = classifier_checkpoint(tmp_path / 'whole.pth', 18)
    with open(whole, 'rb') as f:
        data = f.read()
    with open(tmp_path / 'truncated.pth', 'wb') as f:
        f.write(data[:len(data) // 2])
    return str(tmp_path / 'truncated.pth')


@pytest.mark.parametrize('how', ['resume', 'load_from', 'test', 'pretrained'])
def test_garbage_checkpoint(tmp_path, test_config, work_dir, how):
    path = garbage(tmp_path / 'garbage.pth')
    argv = {
        'resume': [test_config, '--resume', path],
        'load_from': [test_config, '--cfg-options', f'load_from={path}'],
        'test': [test_config, path],
        'pretrained': [test_config, '--cfg-options', 'model.backbone.init_cfg.type=Pretrained',
                       f'model.backbone.init_cfg.checkpoint={path}'],
    }[how]
    main = test_tool.main if how == 'test' else train_tool.main
    named = {'resume': f'--resume {path}: ', 'load_from': f'load_from {path}: ',
             'test': f'checkpoint {path}: ',
             'pretrained': f"model.backbone.init_cfg.checkpoint = '{path}': "}[how]
    refused(main, argv + ['--work-dir', work_dir], work_dir, named + NOT_A_CHECKPOINT)


def test_truncated_checkpoint(test_config, work_dir, truncated_checkpoint):
    refused(test_tool.main, [test_config, truncated_checkpoint, '--work-dir', work_dir],
            work_dir, f'checkpoint {truncated_checkpoint}: {NOT_A_CHECKPOINT}')


def test_launcher_pytorch_outside_torchrun(test_config, work_dir, monkeypatch):
    for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(var, raising=False)
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--launcher', 'pytorch'],
            work_dir, '--launcher pytorch needs the environment variables', 'torchrun',
            '--launcher none')


def test_work_dir_that_is_a_file(tmp_path, test_config):
    folder = earlier_run(tmp_path / 'runs')
    a_file = os.path.join(folder, 'notes.txt')
    refused(train_tool.main, [test_config, '--work-dir', a_file], folder,
            f'--work-dir {a_file} is a file, not a folder')
    refused(test_tool.main, [test_config, 'x.pth', '--work-dir', os.path.join(a_file, 'sub')],
            folder, f'({a_file} is a file)')


def test_string_depth(tmp_path, test_config, work_dir):
    config = tmp_path / 'string_depth.py'
    config.write_text(f"_base_ = {test_config!r}\nmodel = dict(backbone=dict(depth='50'))\n")
    refused(train_tool.main, [str(config), '--work-dir', work_dir], work_dir,
            "PyConvResNet: depth must be an int such as 50", "not '50'")


def test_one_image_without_batch_axis():
    from mmpyconv.models.backbones.pyconv_resnet import PyConvResNet
    backbone = PyConvResNet(depth=18).eval()
    with pytest.raises(ValueError) as info:
        backbone(torch.zeros(3, 32, 32))
    message = str(info.value)
    assert '\n' not in message
    assert message == ('PyConvResNet takes a batch shaped (N, C, H, W), got one sample of shape '
                       '(3, 32, 32): add the batch axis, x.unsqueeze(0)')


def test_cpu_only_runs_name_gloo(test_config, monkeypatch):
    """The config the Runner gets names gloo on a machine without an accelerator (the log's
    'GPU number' is checked in test_bad_data's real run)."""
    from mmpyconv.runner import launch, load_config, setup_launcher
    monkeypatch.setattr(launch, 'accelerator_available', lambda: False)
    cfg = load_config(test_config)
    setup_launcher(cfg, 'none')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
