"""A process's random number generators as checkpoint data, and back.

What a training process draws from: Python's ``random`` (some transforms), numpy's global
generator (mmcv's and the toolboxes' transforms), torch's CPU generator (drop path, dropout,
mixup/cutmix, and the base seed a DataLoader draws each time an iterator is created) and one
torch generator per CUDA device (dropout on the GPU).

The states are stored as plain tuples, ints, floats and tensors, never numpy arrays: torch >=
2.6 loads checkpoints weights-only, and numpy's state would need more numpy globals on the
allowlist than :func:`mmpyconv.compat.allow_mmengine_checkpoints` adds.
"""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch

__all__ = ['capture_random_states', 'restore_random_states', 'capture_torch_state',
           'restore_torch_state']


def capture_torch_state() -> torch.Tensor:
    """torch's CPU generator state (a copy: later draws do not change it)."""
    return torch.get_rng_state().clone()


def restore_torch_state(state: torch.Tensor) -> None:
    torch.set_rng_state(state.to(device='cpu', dtype=torch.uint8))


def _cuda_states() -> Optional[list]:
    """One state per visible CUDA device, or None where CUDA was never initialised.

    A process that never initialised CUDA never drew from its generators; reading them would
    create a context on every visible device (on an 8-GPU node, 8 contexts in each of the 8
    processes), so an uninitialised CUDA is recorded as None instead.
    """
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return [torch.cuda.get_rng_state(i).clone() for i in range(torch.cuda.device_count())]


def capture_random_states() -> Dict[str, Any]:
    """Every generator this process draws from, as checkpoint-safe data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return dict(
        python=random.getstate(),
        numpy=dict(kind=str(kind), keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), gauss=float(gauss)),
        torch=capture_torch_state(),
        cuda=_cuda_states())


def restore_random_states(states: Dict[str, Any]) -> None:
    """Set every generator back to ``states`` (from :func:`capture_random_states`).

    CUDA states are set for as many devices as both the saved process and this one have;
    :func:`torch.cuda.set_rng_state` defers the call until CUDA is initialised, so no context
    is created here either.
    """
    version, internal, gauss_next = states['python']
    random.setstate((version, tuple(internal), gauss_next))
    saved = states['numpy']
    np.random.set_state((saved['kind'], saved['keys'].numpy().astype(np.uint32), saved['pos'],
                         saved['has_gauss'], saved['gauss']))
    restore_torch_state(states['torch'])
    if states.get('cuda') and torch.cuda.is_available():
        for device, state in enumerate(states['cuda'][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state.to(device='cpu', dtype=torch.uint8), device)
