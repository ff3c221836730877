"""tools/slurm_train.sh and tools/slurm_test.sh against a real Slurm, equal to torchrun's run.

A one-node cluster on this machine (Debian's slurm-wlm: slurmctld, slurmd and munge on this
host, its CPUs): used as it is when ``sinfo`` shows the partition's node up, else started by
tools/ci/start_slurm.sh (as root; it installs the packages if missing), so that pytest alone
gets it too. The test skips, with the script's reason, only where Slurm cannot be installed or
started without root.

The tiny shapes run (tool_harness.write_config, one epoch) trains twice with two CPU processes
(gloo): through srun (2 tasks) and through torchrun (tools/dist_train.sh). Both must save the
same weights, bit for bit, and test (tools/slurm_test.sh, tools/dist_test.sh) to the same
accuracy and the same scores for every image. OMP_NUM_THREADS=1 in both, as torchrun sets by
default for several processes: a CPU conv's sums depend on the thread count.
"""
import os
import pickle
import re
import shutil
import subprocess
import sys
import uuid

import pytest
import torch

from tool_harness import (
    CLASSES,
    HELPERS,
    TOOLS,
    VAL_PER_CLASS,
    free_port,
    log_records,
    ok,
    run,
)

START_SLURM = os.path.join(TOOLS, 'ci', 'start_slurm.sh')
PARTITION = os.environ.get('SLURM_PARTITION', 'cpu')
ITERS = 2  # 24 images, 8 per process and iteration, two processes


def slurm_up() -> bool:
    if not shutil.which('sinfo'):
        return False
    try:
        result = subprocess.run(['sinfo', '--noheader', f'--partition={PARTITION}',
                                 '--format=%T'], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and bool(
        re.match(r'(idle|mixed|allocated|completing)', result.stdout.strip()))


@pytest.fixture(scope='session')
def slurm_partition() -> str:
    """A partition of a running Slurm with room for two one-CPU tasks."""
    if not slurm_up():
        result = run(['bash', START_SLURM], timeout=900,
                     env=dict(SLURM_PARTITION=PARTITION))
        output = (result.stdout + result.stderr).strip()
        if result.returncode == 3:  # the script's "cannot install Slurm here"
            pytest.skip(output.splitlines()[-1])
        assert result.returncode == 0, f'tools/ci/start_slurm.sh failed:\n{output[-4000:]}'
    return PARTITION


@pytest.fixture
def job_name():
    """A job name of its own; whatever still runs under it at the end is cancelled."""
    name = f'mmpyconv-test-{uuid.uuid4().hex[:8]}'
    yield name
    if shutil.which('scancel'):
        subprocess.run(['scancel', f'--name={name}'], capture_output=True, timeout=30)


def top1(output: str) -> float:
    (value, ) = re.findall(r'accuracy/top1: (\d+\.\d+)', output)
    return float(value)


def test_slurm_equals_torchrun(slurm_partition, job_name, dist_config, tmp_path):
    common = dict(PYTHON=sys.executable, PYTHONPATH=HELPERS, OMP_NUM_THREADS='1',
                  MASTER_ADDR=None)
    # GPUS_PER_NODE stays 8: the scripts ask for GPUS tasks per node when that is fewer.
    slurm_env = dict(common, GPUS='2', CPUS_PER_TASK='1', CPU_ONLY='1')
    slurm_dir, torchrun_dir = str(tmp_path / 'slurm'), str(tmp_path / 'torchrun')

    slurm_out = ok(run(['bash', os.path.join(TOOLS, 'slurm_train.sh'), slurm_partition,
                        job_name, dist_config, slurm_dir],
                       env=dict(slurm_env, MASTER_PORT=str(free_port())), timeout=300))
    torchrun_out = ok(run(['bash', os.path.join(TOOLS, 'dist_train.sh'), dist_config, '2',
                           '--work-dir', torchrun_dir],
                          env=dict(common, PORT=str(free_port())), timeout=300))

    # srun ran two tasks of one job step, which trained together as ranks 0 and 1.
    dumps = [torch.load(os.path.join(slurm_dir, f'rank{r}_weights.pth'), weights_only=True)
             for r in (0, 1)]
    assert [(d['rank'], d['world_size'], d['iter']) for d in dumps] == [(0, 2, ITERS),
                                                                      (1, 2, ITERS)]
    assert [r['step'] for r in log_records(slurm_out)] == list(range(1, ITERS + 1))
    logged = [[(r['lr'], r['loss']) for r in log_records(out)]
              for out in (slurm_out, torchrun_out)]
    assert logged[0] == logged[1]

    # The same weights and buffers, bit for bit.
    states = [torch.load(os.path.join(d, 'epoch_1.pth'), weights_only=False)['state_dict']
              for d in (slurm_dir, torchrun_dir)]
    assert states[0].keys() == states[1].keys()
    for name, value in states[0].items():
        torch.testing.assert_close(states[1][name], value, rtol=0, atol=0,
                                   msg=f'slurm and torchrun differ in {name}')
    initial = dumps[0]['initial']
    assert all(not torch.equal(states[0][n], v) for n, v in initial.items()), 'nothing trained'

    # Testing through srun and through torchrun: the same metric and the same scores.
    def test_run(name, command, env):
        out_file = str(tmp_path / f'{name}.pkl')
        output = ok(run(['bash', *command, '--work-dir', str(tmp_path / name), '--out', out_file],
                        env=env, timeout=300))
        with open(out_file, 'rb') as f:
            return top1(output), sorted(pickle.load(f), key=lambda p: p['img_path'])

    slurm_top1, slurm_preds = test_run(
        'slurm_test', [os.path.join(TOOLS, 'slurm_test.sh'), slurm_partition, job_name,
                       dist_config, os.path.join(slurm_dir, 'epoch_1.pth')],
        dict(slurm_env, MASTER_PORT=str(free_port())))
    torchrun_top1, torchrun_preds = test_run(
        'torchrun_test', [os.path.join(TOOLS, 'dist_test.sh'), dist_config,
                          os.path.join(torchrun_dir, 'epoch_1.pth'), '2'],
        dict(common, PORT=str(free_port())))
    assert slurm_top1 == torchrun_top1
    assert len(slurm_preds) == len(CLASSES) * VAL_PER_CLASS  # rank 0 gathered every image
    for ours, theirs in zip(slurm_preds, torchrun_preds):
        assert ours['img_path'] == theirs['img_path']
        torch.testing.assert_close(ours['pred_score'], theirs['pred_score'], rtol=0, atol=0)
