"""ExactResumeHook: a training resumed from any checkpoint continues as the run that never stopped.

Two kinds of tests:

* in this process, mmengine Runners on a toy model (BatchNorm, dropout) and a dataset whose
  augmentation draws from Python's, numpy's and torch's generators, with a validation set that
  draws too: each loop (epoch-based with iteration and epoch checkpoints, iteration-based over a
  finite and an infinite sampler), with and without data-loading workers, resumed from a
  checkpoint of an uninterrupted run, must reproduce its losses and final state bit for bit;
* the real tools (tools/train.py, tools/dist_train.sh with two gloo processes) on the shapes
  config with its random crops and flips and drop path: a training killed with SIGKILL after an
  iteration checkpoint in the middle of an epoch, then resumed with ``--resume``, ends with the
  uninterrupted run's weights, BatchNorm statistics, optimizer state, lr and every logged loss.
  The two-process run also checks that the ranks' BatchNorm statistics agree whenever a
  checkpoint is written, and that the validation metric it logged is the one tools/test.py
  gives for the saved checkpoint.
"""
import glob
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from typing import Dict, List

import numpy as np
import pytest
import torch
from torch import nn

from mmpyconv.compat import allow_mmengine_checkpoints

from tool_harness import (
    CLASSES,
    ROOT,
    TINY_CONFIG,
    TOOLS,
    free_port,
    kill_after_first_checkpoint,
    load_tool,
    ok,
    tool,
)

# ---------------------------------------------------------------------------- in this process

TOY_SAMPLES, TOY_BATCH = 40, 4  # 10 batches per epoch


class NoisyDataset(torch.utils.data.Dataset):
    """Fixed points plus noise drawn from every generator a transform may use."""

    def __init__(self, size: int = TOY_SAMPLES):
        g = torch.Generator().manual_seed(1)
        self.points = torch.randn(size, 4, generator=g)
        self.labels = (self.points.sum(1) > 0).long()

    def __len__(self):
        return len(self.points)

    def __getitem__(self, i):
        noise = 0.1 * torch.randn(4) + float(np.random.rand()) + random.random()
        return dict(inputs=self.points[i] + noise, labels=self.labels[i])


def _toy_classes():
    from mmengine.evaluator import BaseMetric
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel

    class ToyModel(BaseModel):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(),
                                     nn.Dropout(0.3), nn.Linear(8, 2))

        def forward(self, inputs, labels, mode='loss'):
            logits = self.net(inputs)
            if mode == 'loss':
                return dict(loss=nn.functional.cross_entropy(logits, labels))
            return list(zip(logits.argmax(1).tolist(), labels.tolist()))

    class Agreement(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results.extend(p == t for p, t in data_samples)

        def compute_metrics(self, results):
            return dict(agreement=sum(results) / len(results))

    class RecordLosses(Hook):
        def __init__(self):
            self.losses = {}

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses[runner.iter + 1] = (batch_idx, outputs['loss'].item())

    return ToyModel, Agreement, RecordLosses


def toy_train(work_dir: str, by_epoch: bool, checkpoint: dict, resume_from: str = None,
              num_workers: int = 0, infinite: bool = False, exact: bool = True,
              **hook_args) -> Dict[str, object]:
    """One toy training (3 epochs, or 30 iterations); its losses by iteration and final state."""
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner

    from mmpyconv.engine import ExactResumeHook
    allow_mmengine_checkpoints()
    ToyModel, Agreement, RecordLosses = _toy_classes()
    recorder = RecordLosses()
    loader = dict(dataset=NoisyDataset(), batch_size=TOY_BATCH, num_workers=num_workers,
                  persistent_workers=False, collate_fn=dict(type='default_collate'),
                  sampler=dict(type='InfiniteSampler' if infinite else 'DefaultSampler',
                               shuffle=True))
    train_cfg = (dict(by_epoch=True, max_epochs=3, val_interval=1) if by_epoch else
                 dict(type='IterBasedTrainLoop', max_iters=30, val_interval=7))
    hooks = [recorder] + ([ExactResumeHook(**hook_args)] if exact else [])
    runner = Runner(
        model=ToyModel(), work_dir=work_dir,
        experiment_name=work_dir.strip(os.sep).replace(os.sep, '_'),
        train_dataloader=loader, train_cfg=train_cfg,
        val_dataloader=dict(loader, num_workers=0, sampler=dict(type='DefaultSampler',
                                                                shuffle=False)),
        val_cfg=dict(), val_evaluator=Evaluator(Agreement()),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', by_epoch=by_epoch,
                             milestones=[1, 2] if by_epoch else [10, 20]),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', max_keep_ckpts=-1,
                                           **checkpoint),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=hooks, randomness=dict(seed=0),
        resume=resume_from is not None, load_from=resume_from)
    runner.train()
    model = runner.model
    return dict(losses=recorder.losses,
                state={k: v.clone() for k, v in model.state_dict().items()},
                momentum=[s['momentum_buffer'].clone()
                          for s in runner.optim_wrapper.optimizer.state.values()])


@pytest.fixture
def one_thread():
    """Toy batches are tiny: more threads only add synchronisation (and on a shared machine,
    waiting for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same_run(resumed: dict, reference: dict, after: int) -> None:
    expected = {i: v for i, v in reference['losses'].items() if i > after}
    assert resumed['losses'] == expected
    for name, value in reference['state'].items():
        assert torch.equal(resumed['state'][name], value), name
    assert all(torch.equal(a, b) for a, b in zip(resumed['momentum'], reference['momentum']))


# (loop, checkpoint hook, checkpoint to resume from, workers, infinite sampler)
SCENARIOS = {
    'epoch loop, iteration checkpoint within an epoch': (
        True, dict(by_epoch=False, interval=4), 'iter_12.pth', 0, False),
    'epoch loop, iteration checkpoint at an epoch end': (
        True, dict(by_epoch=False, interval=5), 'iter_10.pth', 0, False),
    'epoch loop, epoch checkpoint': (True, dict(interval=1), 'epoch_1.pth', 0, False),
    'iteration loop within a pass': (False, dict(by_epoch=False, interval=6), 'iter_12.pth', 0,
                                     False),
    'iteration loop at a pass end': (False, dict(by_epoch=False, interval=5), 'iter_20.pth', 0,
                                     False),
    'iteration loop, infinite sampler': (False, dict(by_epoch=False, interval=6), 'iter_18.pth',
                                         0, True),
    'epoch loop, 2 workers, within an epoch': (True, dict(by_epoch=False, interval=4),
                                               'iter_16.pth', 2, False),
    'iteration loop, 2 workers': (False, dict(by_epoch=False, interval=6), 'iter_18.pth', 2,
                                  False),
}


@pytest.mark.parametrize('scenario', list(SCENARIOS))
def test_toy_resume_is_exact(tmp_path, one_thread, scenario):
    by_epoch, checkpoint, resume_file, workers, infinite = SCENARIOS[scenario]
    common = dict(by_epoch=by_epoch, checkpoint=checkpoint, num_workers=workers,
                  infinite=infinite)
    reference = toy_train(str(tmp_path / 'full'), **common)
    path = str(tmp_path / 'full' / resume_file)
    after = torch.load(path, map_location='cpu')['meta']['iter']
    resumed = toy_train(str(tmp_path / 'resumed'), resume_from=path, **common)
    assert_same_run(resumed, reference, after)
    # The resumed epoch numbers its batches as the uninterrupted one did (logging, epoch end).
    assert [v[0] for v in resumed['losses'].values()][:3] == [
        reference['losses'][i][0] for i in range(after + 1, after + 4)]


def test_toy_resume_without_the_hook_differs(tmp_path, one_thread):
    """The scenarios above test something: mmengine alone restarts the epoch and the
    generators, and ends elsewhere."""
    common = dict(by_epoch=True, checkpoint=dict(by_epoch=False, interval=4), exact=False)
    reference = toy_train(str(tmp_path / 'full'), **common)
    resumed = toy_train(str(tmp_path / 'resumed'), resume_from=str(
        tmp_path / 'full' / 'iter_12.pth'), **common)
    assert max(resumed['losses']) > max(reference['losses'])  # epoch 2 trained twice
    assert not torch.equal(resumed['state']['net.0.weight'], reference['state']['net.0.weight'])


# ---------------------------------------------------------------------------- the tools

TRAIN_PER_CLASS, VAL_PER_CLASS = 8, 4
BATCH, EPOCHS = 4, 3  # in all processes together
ITERS_PER_EPOCH = len(CLASSES) * TRAIN_PER_CLASS // BATCH  # 12
ITERS = EPOCHS * ITERS_PER_EPOCH
CHECKPOINT_INTERVAL = 5  # iterations: every checkpoint but the last is inside an epoch

DUMP_HOOK = '''\
"""Test helper: each rank saves its model's buffers after every iteration, once a checkpoint
of that iteration is written (lowest priority: after CheckpointHook)."""
import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankBuffersHook(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        folder = os.path.join(runner.work_dir, 'buffers')
        os.makedirs(folder, exist_ok=True)
        torch.save({k: v.clone() for k, v in model.named_buffers()},
                   os.path.join(folder, f'rank{get_rank()}_iter{runner.iter + 1}.pth'))
'''


@pytest.fixture(scope='module')
def resume_setup(tmp_path_factory) -> Dict[str, str]:
    """The shapes config made tiny (8-channel PyConvResNet-18 with drop path, 48 training
    images of 32 px with its random crops and flips, 3 epochs of 12 iterations), deterministic,
    logging every iteration, an iteration checkpoint every 5 iterations; and the buffer dump."""
    folder = tmp_path_factory.mktemp('exact_resume')
    data_root = str(folder / 'shapes')
    load_tool('data/make_shapes_dataset.py').write_dataset(
        data_root, CLASSES, size=32, train_per_class=TRAIN_PER_CLASS,
        val_per_class=VAL_PER_CLASS, seed=0)
    helpers = folder / 'helpers'
    helpers.mkdir()
    (helpers / 'dump_rank_buffers.py').write_text(DUMP_HOOK)
    config = folder / 'tiny_resume.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = {TINY_CONFIG!r}
        data_root = {data_root!r}
        custom_imports = dict(imports=['mmpyconv', 'dump_rank_buffers'],
                              allow_failed_imports=False)
        # The shipped config's hooks (ExactResumeHook), and the buffer dump.
        custom_hooks = _base_.custom_hooks + [dict(type='DumpRankBuffersHook')]
        model = dict(
            backbone=dict(stem_channels=8, base_channels=8, drop_path_rate=0.1,
                          pyconv_groups=[[1, 1, 1, 1], [1, 1, 1], [1, 1], [1]]),
            head=dict(in_channels=64))
        train_dataloader = dict(batch_size={BATCH}, dataset=dict(data_root=data_root))
        val_dataloader = dict(batch_size=12, dataset=dict(data_root=data_root))
        test_dataloader = val_dataloader
        param_scheduler = [
            dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
                 convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', T_max=2, by_epoch=True, begin=1, end=3)]
        train_cfg = dict(max_epochs={EPOCHS}, val_interval=1)
        default_hooks = dict(
            logger=dict(interval=1),
            checkpoint=dict(by_epoch=False, interval={CHECKPOINT_INTERVAL}, max_keep_ckpts=-1))
        randomness = dict(seed=0, deterministic=True)
        '''))
    return dict(config=str(config), helpers=str(helpers))


def train_command(setup: Dict[str, str], processes: int, work_dir: str, *extra: str):
    """tools/train.py, or tools/dist_train.sh with ``processes`` gloo processes sharing the
    same total batch; and its environment."""
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1',
               PYTHONPATH=setup['helpers'])
    if processes == 1:
        return [sys.executable, os.path.join(TOOLS, 'train.py'), setup['config'], '--work-dir',
                work_dir, *extra], env
    env.update(PYTHON=sys.executable, PORT=str(free_port()))
    return ['bash', os.path.join(TOOLS, 'dist_train.sh'), setup['config'], str(processes),
            '--work-dir', work_dir, '--cfg-options',
            f'train_dataloader.batch_size={BATCH // processes}', *extra], env


def train(setup, processes: int, work_dir: str, *extra: str) -> str:
    args, env = train_command(setup, processes, work_dir, *extra)
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f'{" ".join(args)} failed:\n{output[-6000:]}'
    return output


def train_and_kill(setup, processes: int, work_dir: str, timeout: float = 240) -> str:
    """Start a training, SIGKILL every one of its processes as soon as its first checkpoint is
    complete, return that checkpoint."""
    args, env = train_command(setup, processes, work_dir)
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return kill_after_first_checkpoint(proc, work_dir, timeout)


def load(path: str) -> dict:
    allow_mmengine_checkpoints()
    return torch.load(path, map_location='cpu')


def scalars(work_dir: str) -> List[List[dict]]:
    """The records of each run in ``work_dir`` (vis_data/scalars.json), oldest run first."""
    runs = []
    for path in sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            runs.append([json.loads(line) for line in f if line.strip()])
    return runs


def differences(a: dict, b: dict) -> Dict[str, float]:
    """Largest absolute differences between two checkpoints: weights, BatchNorm statistics,
    SGD momentum."""
    out = dict(weights=0.0, buffers=0.0, momentum=0.0)
    for name, value in a['state_dict'].items():
        kind = 'buffers' if name.endswith(('running_mean', 'running_var',
                                           'num_batches_tracked')) else 'weights'
        diff = (value.double() - b['state_dict'][name].double()).abs().max().item()
        out[kind] = max(out[kind], diff)
    for x, y in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        diff = (x['momentum_buffer'] - y['momentum_buffer']).abs().max().item()
        out['momentum'] = max(out['momentum'], diff)
    return out


@pytest.fixture(scope='module')
def uninterrupted(resume_setup, tmp_path_factory):
    """The runs that never stop, on 1 and on 2 processes (made on first use)."""
    runs = {}

    def get(processes: int) -> Dict[str, str]:
        if processes not in runs:
            work_dir = str(tmp_path_factory.mktemp(f'uninterrupted{processes}'))
            runs[processes] = dict(work_dir=work_dir,
                                   output=train(resume_setup, processes, work_dir))
        return runs[processes]
    return get


@pytest.mark.parametrize('processes', [1, 2])
def test_killed_training_resumes_exactly(resume_setup, uninterrupted, tmp_path, processes):
    from mmengine.config import Config
    hooks = Config.fromfile(TINY_CONFIG).custom_hooks
    assert 'ExactResumeHook' in [h['type'] for h in hooks], 'the shipped config enables it'
    reference = uninterrupted(processes)

    work_dir = str(tmp_path / 'work')
    checkpoint = train_and_kill(resume_setup, processes, work_dir)
    saved_iter = int(re.search(r'iter_(\d+)\.pth$', checkpoint).group(1))
    assert saved_iter < ITERS and saved_iter % ITERS_PER_EPOCH, 'killed within an epoch'
    output = train(resume_setup, processes, work_dir, '--resume')
    epoch, batches = divmod(saved_iter, ITERS_PER_EPOCH)
    assert (f'ExactResumeHook: restored the random states of {processes} process(es); '
            f'skipping the {batches} batches of epoch {epoch + 1} already trained') in output

    final = load(os.path.join(work_dir, f'iter_{ITERS}.pth'))
    expected = load(os.path.join(reference['work_dir'], f'iter_{ITERS}.pth'))
    assert final['meta']['iter'] == expected['meta']['iter'] == ITERS
    assert differences(final, expected) == dict(weights=0.0, buffers=0.0, momentum=0.0)
    assert final['optimizer']['param_groups'] == expected['optimizer']['param_groups']
    assert final['param_schedulers'] == expected['param_schedulers']

    # Every logged training loss and lr after the resume point, and every validation.
    (before, ), resumed = scalars(reference['work_dir']), scalars(work_dir)[-1]
    later = [r for r in before if r['step'] > saved_iter or 'accuracy/top1' in r]
    train_keys = ('step', 'epoch', 'iter', 'lr', 'loss')
    assert [{k: r[k] for k in train_keys} for r in resumed if 'loss' in r] == [
        {k: r[k] for k in train_keys} for r in later if 'loss' in r]
    assert len([r for r in resumed if 'loss' in r]) == ITERS - saved_iter
    validations = [r['accuracy/top1'] for r in later if 'accuracy/top1' in r]
    assert [r['accuracy/top1'] for r in resumed if 'accuracy/top1' in r] == validations[
        -len([r for r in resumed if 'accuracy/top1' in r]):]


def test_two_processes_agree_on_batchnorm_and_metric(resume_setup, uninterrupted, tmp_path):
    """BatchNorm statistics are per process (DDP with broadcast_buffers=False); whenever a
    checkpoint is written, both ranks hold its statistics, so the metric logged at validation
    is the saved model's: tools/test.py on the checkpoint gives the same number."""
    run = uninterrupted(2)
    work_dir = run['work_dir']
    saved = sorted(int(re.search(r'iter_(\d+)', p).group(1))
                   for p in glob.glob(os.path.join(work_dir, 'iter_*.pth')))
    assert saved == list(range(CHECKPOINT_INTERVAL, ITERS, CHECKPOINT_INTERVAL)) + [ITERS]

    def dump(rank, step):
        return torch.load(os.path.join(work_dir, 'buffers', f'rank{rank}_iter{step}.pth'))
    for step in saved:
        checkpoint = load(os.path.join(work_dir, f'iter_{step}.pth'))['state_dict']
        ranks = dump(0, step), dump(1, step)
        # The saved buffers (the data preprocessor's mean and std are not saved).
        names = [name for name in ranks[0] if name in checkpoint]
        assert sum(name.endswith('running_var') for name in names) > 10
        for name in names:
            assert torch.equal(ranks[1][name], ranks[0][name]), f'{name} at iteration {step}'
            assert torch.equal(checkpoint[name], ranks[0][name]), f'{name} at iteration {step}'
    # Between checkpoints, the ranks' statistics do drift apart: the agreement above is made.
    apart = [step for step in range(1, ITERS) if step not in saved and any(
        not torch.equal(dump(1, step)[k], v) for k, v in dump(0, step).items())]
    assert apart

    (records, ) = scalars(work_dir)
    logged = [r['accuracy/top1'] for r in records if 'accuracy/top1' in r][-1]
    test_dir = str(tmp_path / 'test')
    ok(tool('test.py', resume_setup['config'], os.path.join(work_dir, f'iter_{ITERS}.pth'),
            '--work-dir', test_dir, env=dict(PYTHONPATH=resume_setup['helpers'],
                                             OMP_NUM_THREADS='1')))
    (result, ) = glob.glob(os.path.join(test_dir, '*', '*.json'))
    with open(result) as f:
        assert json.load(f)['accuracy/top1'] == logged
