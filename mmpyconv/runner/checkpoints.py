"""Checkpoint files as the tools take them: what ``--resume`` resumes, and one-line reasons for
a file that is not a checkpoint or cannot be resumed.

torch's own messages for a damaged file are long and misleading (a garbage file gets the
``weights_only`` text, which advises loading it with ``weights_only=False`` and filing an
issue); mmengine's auto-resume trains from scratch when the work directory holds no checkpoint.
"""
import glob
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Optional

from ..compat import allow_mmengine_checkpoints
from .errors import UsageError

__all__ = [
    'NOT_A_CHECKPOINT', 'unreadable_reason', 'load_checkpoint_file', 'latest_checkpoint',
    'resume_target', 'check_resumable'
]

NOT_A_CHECKPOINT = 'not a checkpoint: cannot be unpickled; was it fully written?'


def unreadable_reason(path: str) -> Optional[str]:
    """Why a local file cannot be a torch checkpoint, from its bytes alone (it reads the zip
    directory or the first byte, not the tensors); None when it may be one."""
    if os.path.getsize(path) == 0:
        return 'not a checkpoint: the file is empty; was it fully written?'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return NOT_A_CHECKPOINT
        if any(name.endswith('data.pkl') for name in names):
            return None
        return 'not a checkpoint: a zip archive without the data.pkl that torch.save writes'
    with open(path, 'rb') as f:
        first = f.read(1)
    # torch.save's legacy format, and any pickle, starts with the PROTO opcode.
    return None if first == b'\x80' else NOT_A_CHECKPOINT


def load_checkpoint_file(path: str, where: str) -> Any:
    """The checkpoint at ``path`` (local or a URL), loaded on the CPU as mmengine loads it.

    Args:
        path: the checkpoint.
        where: what named it, for messages: ``'--resume'``, ``'load_from'``, ``'checkpoint'``.

    Raises:
        UsageError: one line naming ``where``, ``path`` and what is wrong.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    allow_mmengine_checkpoints()
    head = f'{where} {path}'
    if '://' not in path:
        if not osp.exists(path):
            raise UsageError(f'{where} {path!r} does not exist')
        if osp.isdir(path):
            raise UsageError(f'{head} is a folder: give a checkpoint file')
        reason = unreadable_reason(path)
        if reason:
            raise UsageError(f'{head}: {reason}')
    try:
        return CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except (EOFError, pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile) as e:
        text = str(e)
        refused = re.search(r'Unsupported global: GLOBAL ([\w.]+)', text)
        if refused:
            raise UsageError(
                f'{head} holds a Python object that torch.load does not load from a file it '
                f'cannot trust ({refused.group(1)}); if you trust the file, save its '
                "state_dict alone (torch.load(path, weights_only=False)['state_dict']) and use "
                'that') from e
        if isinstance(e, RuntimeError) and not re.search(r'zip|unpickl|stream|EOF', text,
                                                         re.IGNORECASE):
            raise UsageError(f'{head} cannot be read: RuntimeError: '
                             f'{text.strip().splitlines()[0]}') from e
        raise UsageError(f'{head}: {NOT_A_CHECKPOINT}') from e
    except Exception as e:  # noqa: BLE001 -- any other failure to read, in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ''
        raise UsageError(f'{head} cannot be read: {type(e).__name__}: {first}') from e


def latest_checkpoint(folder: str) -> Optional[str]:
    """The checkpoint a folder's ``last_checkpoint`` file names (mmengine writes it after every
    checkpoint), found where it was written or beside the file; None if there is no such file.

    Raises:
        UsageError: ``last_checkpoint`` names a file that exists in neither place.
    """
    record = osp.join(folder, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        named = f.read().strip()
    for candidate in (named, osp.join(folder, osp.basename(named))):
        if named and osp.isfile(candidate):
            return candidate
    raise UsageError(f'{record} names {named!r}, which does not exist (deleted or moved?): give '
                     'the checkpoint to resume, --resume CHECKPOINT')


def _checkpoint_files(folder: str):
    return sorted(glob.glob(osp.join(folder, '*.pth')), key=osp.getmtime)


def resume_target(work_dir: str, resume: str) -> str:
    """The checkpoint ``--resume [CHECKPOINT]`` resumes.

    ``'auto'`` (``--resume`` alone) is the latest of ``work_dir``; a folder, the latest of that
    folder; a file, itself (checked when it is loaded).

    Raises:
        UsageError: there is nothing to resume, with what to do instead.
    """
    if resume == 'auto':
        folder, named = work_dir, f'--resume (the latest checkpoint of the work directory ' \
            f'{work_dir})'
        if not osp.isdir(folder):
            raise UsageError(f'{named}: nothing to resume, the work directory does not exist. '
                             'Give the --work-dir of the run to resume, or --resume CHECKPOINT, '
                             'or drop --resume to start a new run')
    elif osp.isdir(resume):
        folder, named = resume, f'--resume {resume}'
    elif not osp.exists(resume) and '://' not in resume:
        raise UsageError(f'--resume {resume}: no such file or folder; give a checkpoint, or the '
                         'work directory of the run to resume')
    else:
        return resume
    latest = latest_checkpoint(folder)
    if latest is not None:
        return latest
    files = _checkpoint_files(folder)
    if files:
        raise UsageError(f'{named}: {folder} has checkpoints but no last_checkpoint file (which '
                         'names the latest); give one, e.g. --resume '
                         f'{files[-1]} (the newest)')
    if resume == 'auto':
        raise UsageError(f'{named}: nothing to resume, no checkpoint there. Give the --work-dir '
                         'of the run to resume, or --resume CHECKPOINT, or drop --resume to '
                         'start a new run')
    raise UsageError(f'{named}: a folder without checkpoints (no last_checkpoint file, no .pth '
                     'file); give a checkpoint, or the work directory of the run to resume')


def check_resumable(checkpoint: Any, path: str) -> None:
    """Refuse a checkpoint that holds no training state (the epoch and iteration, the message
    hub that mmengine's ``Runner.resume`` reads): weights alone start a run, they do not resume
    one."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and 'epoch' in meta and 'iter' in meta and \
            'message_hub' in checkpoint:
        return
    raise UsageError(f'--resume {path}: holds no training state (epoch, iteration, optimizer), '
                     'only weights, so there is nothing to resume; start a new run from these '
                     f'weights with --cfg-options load_from={path}')
