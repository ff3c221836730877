"""mmpyconv.compat: weights-only loading of mmengine checkpoints (open-mmlab/mmengine#1655) and
CPU-only distributed launches (mmengine 0.10.7's launchers assume CUDA)."""
import io
import os
import pickle

import pytest
import torch
from tool_harness import free_port

from mmpyconv.compat import (allow_mmengine_checkpoints, cpu_ddp_wrapper_cfg,
                             init_cpu_process_group, slurm_first_host)


def message_hub_checkpoint(path):
    """What a Runner checkpoint holds besides tensors: a message hub with history buffers."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat-test')
    for loss in (2.0, 1.5, 1.25):
        hub.update_scalar('train/loss', loss)
    hub.update_info('iter', 3)
    torch.save(dict(meta=dict(epoch=1, iter=3), message_hub=hub.state_dict(),
                    state_dict={'w': torch.ones(2)}), path)


def test_mmengine_checkpoint_needs_the_allowlist_and_loads_with_it(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    message_hub_checkpoint(path)
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(path)
        assert allow_mmengine_checkpoints()
        checkpoint = torch.load(path)
    finally:
        torch.serialization.add_safe_globals(saved)
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert buffer.mean() == pytest.approx(4.75 / 3) and buffer.current() == 1.25
    assert checkpoint['meta']['iter'] == 3


class _Gadget:
    """Pickles as a getattr call, as an attack on a loosened allowlist would."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


@pytest.mark.parametrize('name', ['__init__', '__class__', 'update'])
def test_getattr_stays_closed_beyond_history_buffer_statistics(name):
    from mmengine.logging.history_buffer import HistoryBuffer
    allow_mmengine_checkpoints()
    buffer = io.BytesIO()
    torch.save({'x': _Gadget(HistoryBuffer, name)}, buffer)
    buffer.seek(0)
    with pytest.raises(Exception, match='refusing getattr'):
        torch.load(buffer)
    buffer = io.BytesIO()
    torch.save({'x': _Gadget(HistoryBuffer, 'mean')}, buffer)
    buffer.seek(0)
    assert torch.load(buffer)['x'] is HistoryBuffer.mean


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
