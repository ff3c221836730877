"""Speed and memory of PyConv networks beside ResNets, and of each PyConv implementation.

    python tools/analysis/benchmark.py                        # every table, on CUDA if present
    python tools/analysis/benchmark.py --device cpu --batch-size 2 --iters 3 --warmup 1 \\
        --models resnet50 pyconvresnet50 --impls reference dense --dtypes fp32

Prints markdown tables:

1. training step (forward, cross-entropy, backward, SGD step) and inference: images/s, the ratio
   to ResNet-50 in the same setting, and peak GPU memory; one row per model and, for PyConv
   models, per PyConv implementation (``reference``, ``dense``, ``depthwise``, ``triton``,
   ``nested``, ``auto``), for every dtype (``fp32``; ``bf16`` = autocast to bfloat16) in the
   chosen memory format (channels_last by default);
2. per PyConv layer (``--layer-models``, by default PyConvResNet-50's stride-1 PyConv of stages
   1-3 at the sizes the network gives them): forward + backward time of every implementation
   beside a plain 3x3 conv of the same width, and the largest error of each implementation's
   output and gradients relative to the reference.

ResNets are mmpretrain's (backbone, global average pooling, linear head) when mmpretrain is
importable, torchvision's otherwise. Times are medians over ``--iters`` timed iterations after
``--warmup`` untimed ones: CUDA events on a GPU (cudnn.benchmark on); on the CPU the wall clock,
or with ``--threads 1 --cpu-clock process`` the process's CPU time, which stays steady when other
programs share the machine; ``--rounds N`` repeats the model table round-robin and keeps each
row's best round. A case that exceeds ``--max-seconds`` stops early with at least 3 timed
iterations. A case that fails (unavailable Triton, out of memory) prints its error in the table
and the run goes on. On CPU, peak memory is not measured.

On a GPU machine without OpenMMLab packages, mmengine and mmcv-lite (pure Python) are enough to
import mmpyconv; see docs/speed.md for the one-command recipe.
"""
import argparse
import contextlib
import gc
import platform
import statistics
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpyconv.models.arch import build_classifier, parse_arch_name
from mmpyconv.ops import IMPL_NAMES

DTYPES = {'fp32': None, 'bf16': torch.bfloat16}
BASELINE = 'resnet50'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Images/s and peak memory of PyConv networks beside ResNets, and per-layer '
        'times of every PyConv implementation, as markdown tables.')
    parser.add_argument('--device', default=None,
                        help='cuda, cuda:N or cpu. Default: cuda when available, else cpu')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='images per step. Default: 128 on a GPU, 4 on the CPU')
    parser.add_argument('--img-size', type=int, default=224, help='square input size')
    parser.add_argument('--iters', type=int, default=None,
                        help='timed iterations per case. Default: 10 on a GPU, 3 on the CPU')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed iterations first. Default: 3 on a GPU, 1 on the CPU')
    parser.add_argument('--max-seconds', type=float, default=10.0,
                        help='stop timing a case after this long (at least 3 iterations; the '
                        'warm-up stops after half of it)')
    parser.add_argument('--models', nargs='*',
                        default=['resnet50', 'resnet101', 'pyconvresnet50', 'pyconvresnet101',
                                 'pyconvhgresnet50'],
                        help='resnet<d>, pyconvresnet<d>, pyconvhgresnet<d>; none: skip')
    parser.add_argument('--impls', nargs='+',
                        default=['reference', 'dense', 'depthwise', 'triton', 'nested'],
                        choices=IMPL_NAMES, help='PyConv implementations to compare')
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=list(DTYPES))
    parser.add_argument('--modes', nargs='+', default=['train', 'infer'],
                        choices=['train', 'infer'])
    parser.add_argument('--memory-format', default='channels_last',
                        choices=['channels_last', 'contiguous'])
    parser.add_argument('--layer-models', nargs='*', default=['pyconvresnet50'],
                        help='PyConv models whose stage 1-3 PyConv layers are timed one by one; '
                        'none: skip the per-layer table')
    parser.add_argument('--layer-batch-size', type=int, default=None,
                        help='batch of the per-layer table. Default: --batch-size')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads (torch.set_num_threads). Default: torch\'s')
    parser.add_argument('--cpu-clock', default='wall', choices=['wall', 'process'],
                        help='CPU timing: wall clock (perf_counter), or the CPU time of this '
                        'process (process_time), which other processes on a shared machine '
                        'do not inflate; use process only with --threads 1')
    parser.add_argument('--rounds', type=int, default=1,
                        help='time every model row this many times, round-robin, and keep each '
                        'row\'s best round: on a shared machine, load that comes and goes then '
                        'hits every row alike. Default: 1')
    parser.add_argument('--out', default=None, help='also write the tables to this file')
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    gpu = args.device.startswith('cuda')
    if gpu and not torch.cuda.is_available():
        parser.error('--device cuda, but torch sees no GPU')
    if args.batch_size is None:
        args.batch_size = 128 if gpu else 4
    if args.iters is None:
        args.iters = 10 if gpu else 3
    if args.warmup is None:
        args.warmup = 3 if gpu else 1
    if args.layer_batch_size is None:
        args.layer_batch_size = args.batch_size
    for name in args.models + args.layer_models:
        try:
            parse_arch_name(name)
        except ValueError as e:
            parser.error(str(e))
    for name in args.layer_models:
        if name.startswith('resnet'):
            parser.error(f'--layer-models takes PyConv models, got {name!r}')
    if args.cpu_clock == 'process' and args.threads != 1:
        parser.error('--cpu-clock process sums the CPU time of all threads: add --threads 1')
    if min(args.batch_size, args.img_size, args.iters, args.layer_batch_size, args.rounds) < 1:
        parser.error('--batch-size, --img-size, --iters, --layer-batch-size and --rounds must be '
                     'positive')
    return args


# ---- models ----------------------------------------------------------------------------------


def resnet_source() -> str:
    try:
        import mmpretrain.models  # noqa: F401
        return 'mmpretrain'
    except ImportError:
        return 'torchvision'


def pyconv_layers(name: str, img_size: int) -> List[Tuple[str, object, int]]:
    """(label, plan, spatial size) of a stride-1 PyConv of each of stages 1-3 (the second
    block's: the first block's is strided)."""
    from mmpyconv.ops import PyConv2d
    model = build_classifier(name).backbone
    size = (img_size - 1) // 2 + 1  # 7x7/2 stem
    layers = []
    for i in range(3):
        size = (size - 1) // model.strides[i] + 1  # the stage's first, strided PyConv
        block = getattr(model, f'layer{i + 1}')[1]
        conv = next(m for m in block.modules() if isinstance(m, PyConv2d))
        layers.append((f'{name} stage {i + 1}', conv.plan, size))
    return layers


# ---- timing ----------------------------------------------------------------------------------


class Timer:
    """Median milliseconds of a step and its peak memory."""

    def __init__(self, device: torch.device, warmup: int, iters: int, max_seconds: float,
                 cpu_clock: str = 'wall'):
        self.device = device
        self.gpu = device.type == 'cuda'
        self.clock = time.process_time if cpu_clock == 'process' else time.perf_counter
        self.warmup, self.iters, self.max_seconds = warmup, iters, max_seconds

    def _sync(self):
        if self.gpu:
            torch.cuda.synchronize(self.device)

    def _once(self, step: Callable[[], None]) -> float:
        if self.gpu:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        begin = self.clock()
        step()
        return (self.clock() - begin) * 1e3

    def __call__(self, step: Callable[[], None]) -> Tuple[float, Optional[float]]:
        begin = time.perf_counter()
        for _ in range(self.warmup):
            step()
            self._sync()
            if time.perf_counter() - begin > self.max_seconds / 2:
                break
        if self.gpu:
            # after the warm-up, so that cuDNN's algorithm search does not count
            torch.cuda.reset_peak_memory_stats(self.device)
        times, begin = [], time.perf_counter()
        while len(times) < self.iters:
            times.append(self._once(step))
            if len(times) >= 3 and time.perf_counter() - begin > self.max_seconds:
                break
        peak = torch.cuda.max_memory_allocated(self.device) / 2**30 if self.gpu else None
        return statistics.median(times), peak


def _memory_format(args) -> torch.memory_format:
    return torch.channels_last if args.memory_format == 'channels_last' else torch.contiguous_format


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _free(device: torch.device):
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def _error_text(e: BaseException) -> str:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return 'OOM'
    first = str(e).strip().splitlines()[0] if str(e).strip() else ''
    return f'{type(e).__name__}: {first}'[:80].replace('|', '/')


def bench_model(model: nn.Module, mode: str, dtype: Optional[torch.dtype], args,
                timer: Timer, device: torch.device) -> Tuple[float, Optional[float]]:
    """(images/s, peak GiB) of a training step or an inference pass."""
    memory_format = _memory_format(args)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    if mode == 'train':
        model.train()
        target = torch.randint(0, 1000, (args.batch_size, ), device=device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def step():
            with _autocast(device, dtype):
                loss = F.cross_entropy(model(x), target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        model.eval()

        def step():
            with torch.inference_mode(), _autocast(device, dtype):
                model(x)

    ms, peak = timer(step)
    return args.batch_size / ms * 1e3, peak


def model_table(args, device: torch.device, timer: Timer, log) -> List[str]:
    from mmpyconv.ops import pyconv_impl
    source = resnet_source() if any(m.startswith('resnet') for m in args.models) else '-'
    memory_format = _memory_format(args)
    # results[(model, impl)][(mode, dtype)] = (img/s, peak) or an error string
    results: Dict[Tuple[str, str], Dict[Tuple[str, str], object]] = {}
    for round_index in range(args.rounds):
        for name in args.models:
            impls = ['-'] if name.startswith('resnet') else args.impls
            try:
                torch.manual_seed(0)
                model = build_classifier(name, resnet=source).to(device)
                model = model.to(memory_format=memory_format)
            except Exception as e:  # noqa: BLE001 (reported in the table, the run goes on)
                traceback.print_exc()
                for impl in impls:
                    row = results.setdefault((name, impl), {})
                    for setting in _settings(args):
                        row.setdefault(setting, _error_text(e))  # an earlier round's result stays
                continue
            for impl in impls:
                row = results.setdefault((name, impl), {})
                for setting in _settings(args):
                    if isinstance(row.get(setting), str):
                        continue  # failed in an earlier round
                    begin = time.perf_counter()
                    try:
                        with pyconv_impl('auto' if impl == '-' else impl):
                            measured = bench_model(model, setting[0], DTYPES[setting[1]], args,
                                                   timer, device)
                        best = row.get(setting)
                        row[setting] = measured if best is None or measured[0] > best[0] else best
                    except Exception as e:  # noqa: BLE001
                        traceback.print_exc()
                        measured = _error_text(e)
                        if not isinstance(row.get(setting), tuple):  # keep an earlier success
                            row[setting] = measured
                    finally:
                        _free(device)
                    log(f'round {round_index + 1}/{args.rounds} {name} impl={impl} '
                        f'{" ".join(setting)}: {measured} ({time.perf_counter() - begin:.1f} s)')
            del model
            _free(device)

    lines = []
    for mode in args.modes:
        title = ('Training step (forward, cross-entropy, backward, SGD)'
                 if mode == 'train' else 'Inference (forward)')
        lines += ['', f'### {title}: batch {args.batch_size}, {args.img_size}x{args.img_size}, '
                  f'{args.memory_format}, {device.type}', '']
        header = ['model', 'PyConv impl']
        for dtype_name in args.dtypes:
            header += [f'{dtype_name} img/s', f'{dtype_name} vs ResNet-50']
            if device.type == 'cuda':
                header.append(f'{dtype_name} peak GiB')
        lines += [_row(header), _row(['---'] * len(header))]
        for (name, impl), row in results.items():
            cells = [_display_name(name, source), impl]
            for dtype_name in args.dtypes:
                value = row.get((mode, dtype_name))
                base = results.get((BASELINE, '-'), {}).get((mode, dtype_name))
                if isinstance(value, tuple):
                    cells.append(f'{value[0]:,.1f}')
                    cells.append(f'{value[0] / base[0]:.2f}x' if isinstance(base, tuple) else '-')
                    if device.type == 'cuda':
                        cells.append(f'{value[1]:.2f}')
                else:
                    cells += [str(value), '-'] + (['-'] if device.type == 'cuda' else [])
            lines.append(_row(cells))
    return lines


def _settings(args) -> List[Tuple[str, str]]:
    return [(mode, dtype) for mode in args.modes for dtype in args.dtypes]


def _display_name(name: str, source: str) -> str:
    return f'{name} ({source})' if name.startswith('resnet') else name


def _row(cells: Sequence[str]) -> str:
    return '| ' + ' | '.join(cells) + ' |'


# ---- per-layer -------------------------------------------------------------------------------


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def layer_table(args, device: torch.device, timer: Timer, log) -> List[str]:
    from mmpyconv.ops import PyConv2d
    memory_format = _memory_format(args)
    batch = args.layer_batch_size
    header = ['layer', 'input', 'dense/own FLOPs', 'impl']
    for dtype_name in args.dtypes:
        header += [f'{dtype_name} fwd+bwd ms', f'{dtype_name} vs reference',
                   f'{dtype_name} max rel err']
    lines = ['', f'### PyConv layers: forward + backward, batch {batch}, {args.memory_format}, '
             f'{device.type}', '',
             'max rel err: largest |impl - fp32 reference| / max |reference| over the output, the '
             'input gradient and every level\'s weight gradient.', '', _row(header),
             _row(['---'] * len(header))]
    impls = ['reference'] + [i for i in args.impls if i != 'reference'] + ['conv3x3']
    for model_name in args.layer_models:
        for label, plan, size in pyconv_layers(model_name, args.img_size):
            torch.manual_seed(0)
            layer = PyConv2d(plan.in_channels, list(plan.level_channels), plan.kernels,
                             groups=plan.groups).to(device).to(memory_format=memory_format)
            conv = nn.Conv2d(plan.in_channels, plan.out_channels, 3, padding=1,
                             bias=False).to(device).to(memory_format=memory_format)
            x = torch.randn(batch, plan.in_channels, size, size, device=device)
            x = x.contiguous(memory_format=memory_format)
            grad = torch.randn(batch, plan.out_channels, size, size, device=device)
            grad = grad.contiguous(memory_format=memory_format)
            reference = _layer_outputs(layer, 'reference', x, grad, None, device)
            cells = {impl: [] for impl in impls}
            base_ms = {}
            for dtype_name in args.dtypes:
                dtype = DTYPES[dtype_name]
                for impl in impls:
                    module = conv if impl == 'conv3x3' else layer
                    try:
                        if impl != 'conv3x3':
                            layer.impl = impl
                        ms, _ = timer(_layer_step(module, x, grad, dtype, device))
                        err = '-'
                        if impl not in ('conv3x3', ) and (impl != 'reference' or dtype):
                            outs = _layer_outputs(layer, impl, x, grad, dtype, device)
                            err = f'{max(_rel_err(a, b) for a, b in zip(outs, reference)):.1e}'
                        if impl == 'reference':
                            base_ms[dtype_name] = ms
                        ratio = (f'{base_ms[dtype_name] / ms:.2f}x'
                                 if dtype_name in base_ms else '-')
                        cells[impl] += [f'{ms:.3f}', ratio, err]
                    except Exception as e:  # noqa: BLE001
                        traceback.print_exc()
                        cells[impl] += [_error_text(e), '-', '-']
                    finally:
                        layer.impl = 'auto'
                        _free(device)
                    log(f'{label} {impl} {dtype_name}: {cells[impl][-3:]}')
            shape = f'{plan.in_channels}x{size}x{size}'
            for impl in impls:
                ratio = '1.00' if impl == 'conv3x3' else f'{plan.dense_flop_ratio():.1f}'
                what = ('plain 3x3 conv' if impl == 'conv3x3' else
                        f'k{list(plan.kernels)} g{list(plan.groups)}')
                lines.append(_row([f'{label} {what}', shape, ratio if impl == 'dense' else '-',
                                   impl] + cells[impl]))
    return lines


def _layer_step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor,
                dtype: Optional[torch.dtype], device: torch.device) -> Callable[[], None]:
    x = x.detach().requires_grad_()

    def step():
        with _autocast(device, dtype):
            out = module(x)
        out.backward(grad.to(out.dtype))
        module.zero_grad(set_to_none=True)
        x.grad = None

    return step


def _layer_outputs(layer: nn.Module, impl: str, x: torch.Tensor, grad: torch.Tensor,
                   dtype: Optional[torch.dtype], device: torch.device) -> List[torch.Tensor]:
    layer.impl = impl
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    with _autocast(device, dtype):
        out = layer(x)
    out.backward(grad.to(out.dtype))
    # every level's weight grad, and its bias grad where it has a bias (gpu_check.py's cases)
    result = [out.detach().float(), x.grad.float()] + [
        param.grad.float() for param in layer.levels.parameters()
    ]
    layer.zero_grad(set_to_none=True)
    layer.impl = 'auto'
    return result


# ---- main ------------------------------------------------------------------------------------


def environment(args, device: torch.device) -> List[str]:
    lines = ['## PyConv benchmark', '']
    if device.type == 'cuda':
        what = torch.cuda.get_device_name(device)
        extra = (f'cuDNN {torch.backends.cudnn.version()}, cudnn.benchmark on, '
                 f'cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}')
    else:
        what = f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'
        extra = ('process CPU time (time.process_time)'
                 if args.cpu_clock == 'process' else 'wall clock (time.perf_counter)')
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = 'not installed'
    lines.append(f'{device.type}: {what}; torch {torch.__version__}; triton {triton_version}; '
                 f'{extra}; python {platform.python_version()}')
    rounds = (f'; models: best of {args.rounds} round-robin rounds' if args.rounds > 1 else '')
    lines.append(f'median of up to {args.iters} timed iterations after {args.warmup} warm-up '
                 f'(at most {args.max_seconds:g} s per case){rounds}; bf16 = autocast to '
                 'bfloat16')
    return lines


def drop_unavailable_impls(args, device: torch.device) -> List[str]:
    """Leave out 'triton' where it cannot run, and say why."""
    from mmpyconv.ops.dispatch import IMPLS
    from mmpyconv.ops.plan import PyConvPlan
    if 'triton' not in args.impls:
        return []
    reason = IMPLS['triton'].unavailable(torch.empty(0, device=device),
                                          PyConvPlan.create(16, 16, (3, 5)))
    if reason is None:
        return []
    args.impls = [impl for impl in args.impls if impl != 'triton']
    return ['', f'impl triton left out: {reason}']


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    timer = Timer(device, args.warmup, args.iters, args.max_seconds, args.cpu_clock)
    started = time.perf_counter()

    def log(message: str):
        print(f'[{time.perf_counter() - started:7.1f} s] {message}', file=sys.stderr,
              flush=True)

    lines = environment(args, device) + drop_unavailable_impls(args, device)
    # layers first: short, and they check every implementation against the reference
    if args.layer_models:
        lines += layer_table(args, device, timer, log)
    if args.models:
        lines += model_table(args, device, timer, log)
    text = '\n'.join(lines) + '\n'
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    log(f'done in {time.perf_counter() - started:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
