"""mmpyconv.runner.launch: distributed launches on machines without an accelerator (mmengine
0.10.7's launchers assume one)."""
import os

import pytest
import torch

from mmpyconv.runner.launch import cpu_ddp_wrapper_cfg, init_cpu_process_group, slurm_first_host

from tool_harness import free_port


@pytest.mark.parametrize('nodelist, first', [
    ('node07', 'node07'),
    ('node[01-04,07]', 'node01'),
    ('gpu[3,5-6],cpu1', 'gpu3'),
    ('rack[1-2]-n[003-004]', 'rack1-n003'),
    ('a-b.example.org,c', 'a-b.example.org'),
])
def test_slurm_first_host(nodelist, first, monkeypatch):
    monkeypatch.setenv('PATH', '')  # no scontrol: the node list is read by mmpyconv itself
    assert slurm_first_host(nodelist) == first


def test_launcher_errors(monkeypatch):
    assert init_cpu_process_group('none') is False
    with pytest.raises(ValueError, match="unknown launcher 'srun'"):
        init_cpu_process_group('srun')
    for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(var, raising=False)
    if torch.cuda.is_available():
        pytest.skip('with a GPU, mmengine initialises the process group itself')
    with pytest.raises(RuntimeError, match='RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.*torchrun'):
        init_cpu_process_group('pytorch')
    for var in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match='SLURM_PROCID.*srun'):
        init_cpu_process_group('slurm')


def test_slurm_environment_starts_a_gloo_group(monkeypatch):
    import torch.distributed as dist
    if torch.cuda.is_available():
        pytest.skip('with a GPU, mmengine initialises the process group itself')
    for var in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR'):
        monkeypatch.delenv(var, raising=False)  # also restores what the launcher sets
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_LOCALID', '0')
    monkeypatch.setenv('SLURM_NODELIST', 'localhost')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    assert init_cpu_process_group('slurm')
    try:
        assert (dist.get_backend(), dist.get_rank(), dist.get_world_size()) == ('gloo', 0, 1)
        assert [os.environ[v] for v in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR')] == [
            '0', '1', '0', 'localhost']
        assert init_cpu_process_group('slurm') is False  # already initialised
    finally:
        dist.destroy_process_group()


def test_cpu_ddp_wrapper_cfg():
    assert cpu_ddp_wrapper_cfg(None) == dict(type='MMDistributedDataParallel',
                                             broadcast_buffers=False,
                                             find_unused_parameters=False, device_ids=None)
    kept = cpu_ddp_wrapper_cfg(dict(find_unused_parameters=True))
    assert kept == dict(type='MMDistributedDataParallel', find_unused_parameters=True,
                        device_ids=None)

    class NotDDP(torch.nn.Module):
        pass

    assert cpu_ddp_wrapper_cfg(dict(type=NotDDP)) == dict(type=NotDDP)
