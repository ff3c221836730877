"""An interrupted training resumes with tools/train.py --resume where it stopped.

A training process is killed once its first checkpoint is on disk; ``--resume`` (latest
checkpoint of the work directory) then finishes the run. It must continue from the saved
iteration with the optimizer (SGD momentum) and the lr schedule as they were: its losses, lrs and
final weights equal those of the uninterrupted run (conftest ``trained``), which a restarted
optimizer or scheduler would not give.
"""
import os
import re
import subprocess
import sys

import pytest
import torch

from mmpyconv.compat import allow_mmengine_checkpoints

from tool_harness import (
    EPOCHS,
    ITERS_PER_EPOCH,
    ROOT,
    TOOLS,
    kill_after_first_checkpoint,
    log_records,
    ok,
    tool,
)


def start_training(config, work_dir, *extra):
    return subprocess.Popen(
        [sys.executable, os.path.join(TOOLS, 'train.py'), config, '--work-dir', work_dir,
         *extra], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONWARNINGS='ignore'), start_new_session=True)


def load(path):
    allow_mmengine_checkpoints()
    return torch.load(path, map_location='cpu')


def test_resume_continues_optimizer_and_schedule(trained, tmp_path):
    work_dir = str(tmp_path / 'work')
    # Far more epochs than will run: the process is killed after its first checkpoint.
    proc = start_training(trained['config'], work_dir, '--cfg-options',
                          'train_cfg.max_epochs=50')
    checkpoint = kill_after_first_checkpoint(proc, work_dir)
    saved_epoch = int(re.search(r'epoch_(\d+)\.pth$', checkpoint).group(1))
    assert saved_epoch < EPOCHS
    saved_iter = load(checkpoint)['meta']['iter']
    assert saved_iter == saved_epoch * ITERS_PER_EPOCH

    output = ok(tool('train.py', trained['config'], '--work-dir', work_dir, '--resume'))
    assert f'resumed epoch: {saved_epoch}, iter: {saved_iter}' in output

    resumed = log_records(output)
    reference = {(r['epoch'], r['step']): r for r in log_records(trained['output'])}
    assert [(r['epoch'], r['step']) for r in resumed] == [
        key for key in reference if key[0] > saved_epoch]
    for record in resumed:
        expected = reference[(record['epoch'], record['step'])]
        assert record['lr'] == expected['lr']
        assert record['loss'] == pytest.approx(expected['loss'], rel=1e-3, abs=1e-4)

    final = load(os.path.join(work_dir, f'epoch_{EPOCHS}.pth'))
    uninterrupted = load(os.path.join(trained['work_dir'], f'epoch_{EPOCHS}.pth'))
    assert final['meta']['iter'] == uninterrupted['meta']['iter'] == EPOCHS * ITERS_PER_EPOCH
    for name, value in uninterrupted['state_dict'].items():
        torch.testing.assert_close(final['state_dict'][name], value, rtol=1e-4, atol=1e-5,
                                   msg=f'{name} differs from the uninterrupted run')
    momentum = [s['momentum_buffer'] for s in final['optimizer']['state'].values()]
    expected = [s['momentum_buffer'] for s in uninterrupted['optimizer']['state'].values()]
    assert len(momentum) == len(expected) > 0
    for a, b in zip(momentum, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # The schedule's state, apart from its end (the killed run was set to 50 epochs).
    keys = ('_global_step', 'base_values', '_last_value', 'milestones', 'gamma')
    assert [{k: s[k] for k in keys} for s in final['param_schedulers']] == [
        {k: s[k] for k in keys} for s in uninterrupted['param_schedulers']]
