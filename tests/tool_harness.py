"""What the classification tool tests share: constants of the tiny setup, running the real tools
(``sys.executable``, with timeouts, process groups killed on overrun), parsing mmengine logs and
writing the tiny test config. Fixtures are in conftest.py.

(A module of its own, not conftest.py, so that test modules can import it by a name no other
test folder uses.)
"""
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, 'tools')
HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'test_tools', 'helpers')
TINY_CONFIG = os.path.join(ROOT, 'configs', 'pyconvresnet', 'pyconvresnet18_1xb32_shapes.py')
CLASSES = ('circle', 'cross', 'ring', 'square', 'star', 'triangle')
TRAIN_PER_CLASS, VAL_PER_CLASS, BATCH = 4, 3, 8
ITERS_PER_EPOCH = len(CLASSES) * TRAIN_PER_CLASS // BATCH  # 3
EPOCHS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(args: Sequence[str], timeout: float = 240,
        env: Optional[Dict[str, Optional[str]]] = None,
        cwd: str = ROOT) -> subprocess.CompletedProcess:
    """Run a command to completion; on timeout kill its whole process group and fail.

    ``env`` adds to the environment; a value of None removes the variable.
    """
    full_env = dict(os.environ, PYTHONWARNINGS='ignore')
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = subprocess.Popen(list(args), cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f'{" ".join(args)} ran over {timeout}s\n{out[-3000:]}\n{err[-3000:]}')
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def tool(name: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run([sys.executable, os.path.join(TOOLS, name), *args], **kwargs)


def ok(result: subprocess.CompletedProcess) -> str:
    """The combined output of a command that must have succeeded."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, f'{" ".join(result.args)} failed:\n{output[-6000:]}'
    return output


def log_records(output: str, kind: str = 'train') -> List[Dict[str, float]]:
    """The ``Epoch(train) [e][i/n] lr: ... loss: ...`` lines of an mmengine log, parsed."""
    records = []
    for line in output.splitlines():
        match = re.search(rf'Epoch\({kind}\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]\s+(.*)$', line)
        if match:
            values = dict(re.findall(r'([\w/]+): (-?[\d.]+(?:e[-+]?\d+)?)', match.group(4)))
            record = {k: float(v) for k, v in values.items()}
            record.update(epoch=int(match.group(1)), step=int(match.group(2)))
            records.append(record)
    return records


def write_config(path: str, data_root: str, extra: str = '') -> str:
    """A test config: the tiny shapes config on ``data_root``, made small and deterministic.

    Training uses no random augmentation and a seeded sampler, so that two runs of the same
    iterations compute the same weights (the resume test relies on it); the learning rate drops
    10x after epoch 1, so a scheduler that restarted would show.
    """
    text = textwrap.dedent(f'''\
        _base_ = {TINY_CONFIG!r}
        data_root = {data_root!r}
        deterministic_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
        train_dataloader = dict(
            batch_size={BATCH},
            dataset=dict(data_root=data_root, pipeline=deterministic_pipeline),
            sampler=dict(type='DefaultSampler', shuffle=True, seed=0))
        val_dataloader = dict(batch_size=9, dataset=dict(data_root=data_root))
        test_dataloader = val_dataloader
        param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)]
        optim_wrapper = dict(optimizer=dict(lr=0.02))
        train_cfg = dict(max_epochs={EPOCHS}, val_interval=1)
        default_hooks = dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=-1))
        ''') + textwrap.dedent(extra)
    with open(path, 'w') as f:
        f.write(text)
    return path


def load_tool(relpath: str):
    """A tool script as a module (to call its functions in this process)."""
    import importlib.util
    name = 'tool_' + relpath.replace('/', '_')[:-3]
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown_rows(text: str) -> List[Dict[str, str]]:
    """Every body row of every markdown table in ``text``, as {column header: cell}."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith('|'):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if header is None:
            header = cells
        elif not set(line) <= set('|:- '):
            rows.append(dict(zip(header, cells)))
    return rows


def markdown_rows_by_config(text: str) -> Dict[str, List[Dict[str, str]]]:
    """{config file: the table rows of ``text`` that link it}, a row being {column: cell}."""
    rows: Dict[str, List[Dict[str, str]]] = {}
    for row in markdown_rows(text):
        for config in set(re.findall(r'\]\(([\w.-]+\.py)\)', ' | '.join(row.values()))):
            rows.setdefault(config, []).append(row)
    return rows


def metafile_backbone(model: dict) -> Tuple[str, int]:
    """('PyConvResNet', 50) from a metafile entry's Backbone, 'PyConvResNet-50'."""
    family, depth = model['Metadata']['Backbone'].rsplit('-', 1)
    return family, int(depth)


def fake_srun_env(folder) -> Dict[str, Optional[str]]:
    """What a test adds to the environment so that tools/slurm_*.sh run two CPU tasks through
    helpers/fake_srun.py (a stand-in for srun; no MASTER_ADDR, as srun sets none)."""
    import stat
    bin_dir = os.path.join(str(folder), 'bin')
    os.makedirs(bin_dir, exist_ok=True)
    srun = os.path.join(bin_dir, 'srun')
    with open(srun, 'w') as f:
        f.write(f'#!/bin/sh\nexec {sys.executable} {os.path.join(HELPERS, "fake_srun.py")} '
                '"$@"\n')
    os.chmod(srun, os.stat(srun).st_mode | stat.S_IXUSR)
    return dict(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', PYTHON=sys.executable,
                GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1', CPU_ONLY='1',
                MASTER_PORT=str(free_port()), MASTER_ADDR=None, OMP_NUM_THREADS='1')


def snapshot(folder) -> Dict[str, Tuple[int, str]]:
    """{relative path: (mtime, sha1)} of every file under ``folder``: equal snapshots mean that
    nothing in it was written."""
    import hashlib
    state = {}
    for root, _, files in os.walk(str(folder)):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                state[os.path.relpath(path, str(folder))] = (os.stat(path).st_mtime_ns,
                                                             hashlib.sha1(f.read()).hexdigest())
    return state


def earlier_run(folder, config_name: str = 'tiny.py') -> str:
    """A work directory holding an earlier run's files (a config copy and a note), which a
    refused command must leave as they are."""
    os.makedirs(str(folder), exist_ok=True)
    with open(os.path.join(str(folder), config_name), 'w') as f:
        f.write("# the earlier run's config\n")
    with open(os.path.join(str(folder), 'notes.txt'), 'w') as f:
        f.write('keep me\n')
    return str(folder)


def refused(main, argv: Sequence[str], work_dir, *fragments: str, error=None) -> str:
    """Call a tool's ``main(argv)`` in this process: it must raise ``error`` (a UsageError by
    default) whose one-line message holds every fragment, and leave ``work_dir`` unchanged.
    Returns the message."""
    if error is None:
        from mmpyconv.runner import UsageError as error
    before = snapshot(work_dir)
    with pytest.raises(error) as info:
        main(list(argv))
    message = str(info.value)
    print(message)
    for fragment in fragments:
        assert fragment in message, message
    assert '\n' not in message, message
    assert snapshot(work_dir) == before, 'the work directory changed'
    return message


def truncate(path, keep: int = 100) -> str:
    """Cut a file to its first ``keep`` bytes (an image or video written half-way)."""
    with open(path, 'rb') as f:
        head = f.read(keep)
    with open(path, 'wb') as f:
        f.write(head)
    return str(path)


# Small mmaction2 video data, written by the tests (no video tool or config of the repository is
# needed: mmaction2's VideoDataset reads `file label` lines and decodes with decord).
VIDEO_PIPELINE = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=2, frame_interval=1, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 16)),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]


def write_video(path, frames: int = 8, size: Tuple[int, int] = (32, 24), seed: int = 0) -> str:
    """A short mp4 (MPEG-4 part 2, written by OpenCV) of random frames."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8, size)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return str(path)


def video_dataset(folder, names: Sequence[str]) -> dict:
    """The config of an mmaction2 VideoDataset of ``folder``'s videos ``names`` (label: index
    mod 2), its annotation list written beside them."""
    ann_file = os.path.join(str(folder), 'videos.txt')
    with open(ann_file, 'w') as f:
        f.writelines(f'{name} {i % 2}\n' for i, name in enumerate(names))
    return dict(type='VideoDataset', ann_file=ann_file, data_prefix=dict(video=str(folder)),
                pipeline=VIDEO_PIPELINE)


def video_config(path, dataset: dict) -> str:
    """An mmaction2 config file that trains and validates on ``dataset`` (for the data tools;
    it has no model)."""
    loader = dict(batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset)
    with open(str(path), 'w') as f:
        f.write(f"default_scope = 'mmaction'\ntrain_dataloader = {loader!r}\n"
                f"val_dataloader = {dict(loader, dataset=dict(dataset, test_mode=True))!r}\n")
    return str(path)


def process_tree(root: int) -> List[int]:
    """``root`` and its descendants. torchrun starts each worker in a session of its own, so
    killing the launcher's process group would leave the workers training."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    parent = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def kill_after_first_checkpoint(proc: subprocess.Popen, work_dir: str,
                                timeout: float = 240) -> str:
    """SIGKILL a training (``proc`` and every process under it, the workers first) as soon as
    its first checkpoint is complete (mmengine writes ``last_checkpoint`` after the file);
    return that checkpoint."""
    import time
    marker = os.path.join(work_dir, 'last_checkpoint')
    deadline = time.time() + timeout
    try:
        while not os.path.exists(marker):
            if proc.poll() is not None:
                pytest.fail(f'training exited ({proc.returncode}) before its first checkpoint')
            if time.time() > deadline:
                pytest.fail(f'no checkpoint after {timeout}s')
            time.sleep(0.02)
    finally:
        for pid in process_tree(proc.pid)[::-1]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=60)
    with open(marker) as f:
        return f.read().strip()
