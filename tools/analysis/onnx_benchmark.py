"""onnxruntime (CPU) beside PyTorch (CPU) inference, for PyConvResNet-50 and ResNet-50.

    python tools/analysis/onnx_benchmark.py [--models pyconvresnet50 resnet50] [--batch 8]
        [--shape 224] [--threads N] [--iters 10] [--warmup 2] [--opset 17]

Each model (an architecture name of mmpyconv.models.arch: backbone, global average pooling,
1000-class linear layer; ResNets are mmpretrain's backbone under the same head when mmpretrain is
importable) is exported to a temporary ONNX file (PyConvs in their reference form: one grouped
conv per level) and timed in PyTorch (eval, no_grad, the PyConvs' default implementation, which
is the depthwise form on CPUs) and in onnxruntime's CPU provider with the same number of
threads. Prints a markdown table: images/s (median of ``--iters`` timed runs after ``--warmup``
untimed ones), onnxruntime / PyTorch, each model beside the first one, and the largest output
difference.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, List

import numpy as np
import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='onnxruntime vs PyTorch CPU inference.')
    parser.add_argument('--models', nargs='+', default=['pyconvresnet50', 'resnet50'],
                        help='architecture names. Default: pyconvresnet50 resnet50')
    parser.add_argument('--batch', type=int, default=8, help='images per run. Default: 8')
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='input size: H (square) or H W. Default: 224')
    parser.add_argument('--threads', type=int, default=None,
                        help='threads of both runtimes. Default: torch.get_num_threads()')
    parser.add_argument('--iters', type=int, default=10, help='timed runs. Default: 10')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs. Default: 2')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset. Default: 17')
    args = parser.parse_args(argv)
    if len(args.shape) not in (1, 2) or min(args.shape) <= 0:
        parser.error(f'--shape takes one or two positive ints, got {args.shape}')
    if min(args.batch, args.iters) <= 0 or args.warmup < 0:
        parser.error('--batch and --iters must be positive, --warmup not negative')
    return args


def median_seconds(run: Callable[[], object], iters: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(name: str) -> torch.nn.Module:
    from mmpyconv.models.arch import build_classifier
    try:
        import mmpretrain.models  # noqa: F401
        resnet = 'mmpretrain'
    except ImportError:
        resnet = 'torchvision'
    return build_classifier(name, 1000, resnet=resnet).eval()


def benchmark(name: str, args, threads: int, folder: str) -> dict:
    import onnxruntime as ort
    torch.manual_seed(0)
    model = build(name)
    x = torch.randn(args.batch, 3, args.shape[0], args.shape[-1])
    path = os.path.join(folder, f'{name}.onnx')
    with torch.no_grad():
        torch.onnx.export(model, (x, ), path, input_names=['input'], output_names=['output'],
                          opset_version=args.opset, dynamo=False)
        expected = model(x).numpy()

        def torch_run():
            return model(x)

        torch_s = median_seconds(torch_run, args.iters, args.warmup)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    feed = {'input': x.numpy()}
    got = session.run(None, feed)[0]
    ort_s = median_seconds(lambda: session.run(None, feed), args.iters, args.warmup)
    return dict(name=name, torch=args.batch / torch_s, ort=args.batch / ort_s,
                diff=float(np.abs(expected - got).max()), scale=float(np.abs(expected).max()))


def table(rows: List[dict]) -> str:
    first = rows[0]
    lines = ['| model | PyTorch (img/s) | onnxruntime (img/s) | onnxruntime / PyTorch | '
             f'PyTorch vs {first["name"]} | onnxruntime vs {first["name"]} | max abs diff |',
             '|---|--:|--:|--:|--:|--:|--:|']
    for r in rows:
        lines.append(f'| {r["name"]} | {r["torch"]:.2f} | {r["ort"]:.2f} | '
                     f'{r["ort"] / r["torch"]:.2f}x | {r["torch"] / first["torch"]:.2f}x | '
                     f'{r["ort"] / first["ort"]:.2f}x | {r["diff"]:.2g} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmpyconv  # noqa: F401
    from mmpyconv.models.arch import parse_arch_name
    for name in args.models:
        try:
            parse_arch_name(name)
        except ValueError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    import onnxruntime as ort
    print(f'batch {args.batch}, input {args.shape[0]}x{args.shape[-1]}, {threads} threads, '
          f'median of {args.iters} runs after {args.warmup}; torch {torch.__version__}, '
          f'onnxruntime {ort.__version__}')
    with tempfile.TemporaryDirectory() as folder:
        rows = [benchmark(name, args, threads, folder) for name in args.models]
    print(table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
