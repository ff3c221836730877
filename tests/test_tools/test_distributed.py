"""Two CPU processes train together (gloo) through each launcher and end with equal weights.

* pytorch: tools/dist_train.sh runs torchrun with two processes;
* slurm: tools/slurm_train.sh runs srun, here a stand-in (helpers/fake_srun.py) that starts the
  two tasks with the SLURM_* variables of a one-node job step. There is no ``scontrol`` on this
  machine, so the master address comes from SLURM_NODELIST (mmpyconv.compat).

A hook (helpers/rank_weights_hook.py) saves every rank's parameters after training.
"""
import os
import pickle
import sys

import torch

from tool_harness import (
    CLASSES,
    HELPERS,
    ROOT,
    TOOLS,
    VAL_PER_CLASS,
    fake_srun_env,
    free_port,
    log_records,
    ok,
    run,
)

ITERS = 2  # 24 images, 8 per process and iteration, two processes: ceil(12 / 8)


def check_two_ranks_agree(work_dir, output):
    dumps = [torch.load(os.path.join(work_dir, f'rank{r}_weights.pth'), weights_only=True)
             for r in (0, 1)]
    for rank, dump in enumerate(dumps):
        assert dump['rank'] == rank and dump['world_size'] == 2
        assert dump['wrapped'] and dump['wrapper'] == 'MMDistributedDataParallel'
        assert dump['iter'] == ITERS
    assert dumps[0]['params'].keys() == dumps[1]['params'].keys()
    for name, value in dumps[0]['params'].items():
        torch.testing.assert_close(dumps[1]['params'][name], value, rtol=0, atol=0,
                                   msg=f'ranks disagree on {name}')
    # The ranks agree because they trained together, not because neither trained.
    moved = [n for n, v in dumps[0]['params'].items() if not torch.equal(v, dumps[0]['initial'][n])]
    assert len(moved) == len(dumps[0]['params'])
    assert [r['step'] for r in log_records(output)] == list(range(1, ITERS + 1))


def test_torchrun_two_cpu_processes(dist_config, tmp_path):
    work_dir = str(tmp_path / 'work')
    env = dict(PYTHON=sys.executable, PYTHONPATH=HELPERS, OMP_NUM_THREADS='1')
    output = ok(run(['bash', os.path.join(TOOLS, 'dist_train.sh'), dist_config, '2',
                     '--work-dir', work_dir], env=dict(env, PORT=str(free_port())),
                    timeout=300))
    check_two_ranks_agree(work_dir, output)

    # Distributed testing: each process predicts part of the set, rank 0 gathers all of it.
    out_file = str(tmp_path / 'predictions.pkl')
    output = ok(run(['bash', os.path.join(TOOLS, 'dist_test.sh'), dist_config,
                     os.path.join(work_dir, 'epoch_1.pth'), '2', '--work-dir',
                     str(tmp_path / 'test'), '--out', out_file],
                    env=dict(env, PORT=str(free_port())), timeout=300))
    assert 'accuracy/top1' in output
    with open(out_file, 'rb') as f:
        paths = sorted(p['img_path'] for p in pickle.load(f))
    assert len(paths) == len(set(paths)) == len(CLASSES) * VAL_PER_CLASS


def test_slurm_two_cpu_tasks(dist_config, tmp_path):
    work_dir = str(tmp_path / 'work')
    # srun sets no MASTER_ADDR: the launcher must find the master from SLURM_NODELIST.
    env = dict(fake_srun_env(tmp_path), PYTHONPATH=HELPERS)
    output = ok(run(['bash', os.path.join(TOOLS, 'slurm_train.sh'), 'cpu', 'pyconv-test',
                     dist_config, work_dir], env=env, timeout=300, cwd=ROOT))
    check_two_ranks_agree(work_dir, output)
