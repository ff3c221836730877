"""--cfg-options and a config's top-level variables (issue 13, item 4): a variable set on the
command line applies everywhere the config used it (the config is read again with it), a key
set alone while its variable fed others is warned about, and a string where the config holds a
number is refused before anything is written.
"""
import logging
import os

import pytest
from mmengine.config import Config

from mmpyconv.runner import load_config
from mmpyconv.runner.overrides import apply_cfg_options, format_value

from tool_harness import ROOT, TINY_CONFIG, earlier_run, load_tool, refused

train_tool = load_tool('train.py')
SEG_CONFIG = os.path.join(ROOT, 'configs', 'pyconvseg', 'ade20k.py')


def test_data_root_applies_to_every_dataset():
    cfg = load_config(TINY_CONFIG, {'data_root': '/elsewhere/shapes'})
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/elsewhere/shapes'


def test_max_epochs_moves_the_schedule_with_it():
    """The shapes config's cosine schedule is computed from max_epochs (T_max=max_epochs - 1,
    end=max_epochs): all of it follows, as if the file had been edited."""
    cfg = load_config(TINY_CONFIG, {'max_epochs': 4})
    cosine = cfg.param_scheduler[1]
    assert (cfg.train_cfg.max_epochs, cosine.T_max, cosine.end) == (4, 3, 4)


def test_num_classes_reaches_the_head_and_the_preprocessor():
    cfg = load_config(TINY_CONFIG, {'num_classes': 7})
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 7


def test_a_variable_of_a_base_file():
    """mmseg's ADE20K dataset base defines data_root and the dataloaders; the PyConv config
    inherits both: the override reaches into the base file."""
    cfg = load_config(SEG_CONFIG, {'data_root': '/data/ade'})
    assert {cfg[k].dataset.data_root for k in ('train_dataloader', 'val_dataloader',
                                               'test_dataloader')} == {'/data/ade'}


def test_dotted_and_variable_overrides_together():
    """A key set explicitly wins over the value its variable would give it."""
    cfg = load_config(TINY_CONFIG, {'max_epochs': 4, 'param_scheduler.1.T_max': 10})
    assert (cfg.train_cfg.max_epochs, cfg.param_scheduler[1].T_max) == (4, 10)


def test_a_key_set_alone_warns_about_the_others(monkeypatch):
    from mmpyconv.runner import overrides
    logged = []
    monkeypatch.setattr(overrides, 'print_log',
                        lambda message, logger=None, level=None: logged.append((message, level)))
    cfg = load_config(TINY_CONFIG, {'train_cfg.max_epochs': 4})
    assert cfg.train_cfg.max_epochs == 4 and cfg.param_scheduler[1].end == 8
    (warning, level), = [entry for entry in logged if 'sets only that key' in entry[0]]
    assert level == logging.WARNING
    assert 'param_scheduler.1.T_max, param_scheduler.1.end' in warning
    assert 'use --cfg-options max_epochs=4' in warning


def test_a_value_the_config_cannot_compute_with():
    with pytest.raises(Exception) as info:
        load_config(TINY_CONFIG, {'max_epochs': 'abc'})
    assert str(info.value) == ('--cfg-options max_epochs=abc: max_epochs is a number in the '
                               'config (max_epochs=8); give one, e.g. max_epochs=8')


def test_string_for_a_number_refused_before_anything_is_written(tmp_path, test_config):
    work_dir = earlier_run(tmp_path / 'work', os.path.basename(test_config))
    refused(train_tool.main, [test_config, '--work-dir', work_dir, '--cfg-options',
                              'train_cfg.max_epochs=abc'], work_dir,
            '--cfg-options train_cfg.max_epochs=abc: train_cfg.max_epochs is a number in the '
            'config', 'e.g. train_cfg.max_epochs=2')


def test_a_whole_number_the_runner_needs(tmp_path, test_config):
    """The same, written in a config file: the preflight refuses it."""
    work_dir = earlier_run(tmp_path / 'work', os.path.basename(test_config))
    config = tmp_path / 'float_epochs.py'
    config.write_text(f'_base_ = {test_config!r}\ntrain_cfg = dict(max_epochs=2.5)\n')
    refused(train_tool.main, [str(config), '--work-dir', work_dir], work_dir,
            'train_cfg.max_epochs = 2.5: the Runner needs a whole number')


def test_where_the_config_cannot_be_read_again_the_override_is_refused(monkeypatch):
    """A config the reader cannot re-assign (a lazy-import config) refuses a variable override
    with the keys holding the old value and the overrides that set them."""
    from mmpyconv.runner import overrides
    monkeypatch.setattr(overrides, '_reread', lambda path, values: None)
    cfg = Config.fromfile(TINY_CONFIG)
    with pytest.raises(Exception) as info:
        apply_cfg_options(cfg, TINY_CONFIG, {'data_root': '/new'})
    message = str(info.value)
    assert message.startswith("--cfg-options data_root=/new: the config substituted data_root "
                              "(data/shapes) into other keys")
    assert ('--cfg-options train_dataloader.dataset.data_root=/new '
            'val_dataloader.dataset.data_root=/new '
            'test_dataloader.dataset.data_root=/new') in message


def test_values_as_typed_on_the_command_line():
    assert [format_value(v) for v in (4, 'a/b', [1, 2], (1, ), (1, 2), True, None)] == \
        ['4', 'a/b', '[1,2]', '(1,)', '(1,2)', 'True', 'None']
