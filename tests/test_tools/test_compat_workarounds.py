"""mmpyconv.compat: weights-only loading of mmengine checkpoints (open-mmlab/mmengine#1655)."""
import io
import pickle

import pytest
import torch

from mmpyconv.compat import allow_mmengine_checkpoints


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
