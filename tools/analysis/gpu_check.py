"""One command for a CUDA machine: every PyConv implementation checked, then timed.

    python tools/analysis/gpu_check.py                  # all of it; writes work_dirs/gpu_check/
    python tools/analysis/gpu_check.py --write-table    # and updates mmpyconv/ops/auto_table.json
    python tools/analysis/gpu_check.py --device cpu --quick   # the logic on tiny sizes (CI)

In order:

1. **Triton launch configs**: no launch in ``mmpyconv/ops/impls/triton_kernels.py`` may use
   ``num_warps >= 8`` (read from the source, so without Triton too): non-1x1 conv kernels with
   flattened kernel loops gave wrong results there (pytorch/pytorch#173068).
2. **Parity**: every implementation against the fp32 reference, output and gradients (input,
   every level's weight and bias), on every distinct PyConv layer shape of the ``--parity-models``
   (PyConvResNet-50 and PyConvHGResNet-50: every stage plan at stride 1 and 2, plus each plan at
   dilation 2), fp32 and bf16 (autocast), NCHW and channels_last, at a small batch and size. TF32
   is off while checking, so fp32 means fp32. A channels_last input must give a channels_last
   output. The reference itself is checked under bf16 too (the tolerance's sanity).
3. **Per layer**: every distinct PyConv layer of the ``--layer-models`` at its size in the
   network (batch ``--layer-batch-size``), each implementation and a plain 3x3 conv of the same
   width and stride: forward, input-gradient and weight-gradient times, each alone.
4. **Networks**: ResNet-50 (mmpretrain's, else torchvision's) beside PyConvResNet-50 and
   PyConvHGResNet-50 under each implementation and ``auto``; training step and inference;
   images/s and the ratio to the first ResNet of ``--models``.

Settings of 3 and 4: ``bf16-nhwc`` (autocast to bfloat16, channels_last) and ``fp32-nchw``
(NCHW, PyTorch's default TF32 setting for cuDNN convs). Timing is :class:`benchmark.Timer`'s
(CUDA events after warm-up, median, cudnn.benchmark on), the network step is
``benchmark.bench_model``'s. Everything goes to ``--out-dir``: ``gpu_check.json`` (all numbers)
and ``gpu_check.md`` (the tables). ``--write-table [PATH]`` records, per layer shape and setting,
the implementation with the least forward + input-gradient + weight-gradient time among those
that passed parity, under this GPU's name, in the table ``impl='auto'`` reads on CUDA (other
GPUs' tables are kept). Sized to finish within about 8 minutes on one H200 (not yet run on one).

Exit status: 0 when every check passed; 1 on a parity failure or a Triton launch config with
``num_warps >= 8``; 2 without CUDA (unless ``--device cpu --quick``) or for bad arguments.
"""
import argparse
import ast
import datetime
import functools
import json
import os
import platform
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmark.py, beside this file
import benchmark  # noqa: E402 (the timing, model and comparison pieces are benchmark.py's)

from mmpyconv.models.arch import build_classifier, parse_arch_name  # noqa: E402
from mmpyconv.ops import PyConv2d, PyConvPlan, dispatch, pyconv_impl  # noqa: E402

# name -> (dtype name, memory format name)
SETTINGS = {'bf16-nhwc': ('bf16', 'channels_last'), 'fp32-nchw': ('fp32', 'contiguous')}
LAYOUTS = {'channels_last': torch.channels_last, 'contiguous': torch.contiguous_format}
COMPUTE_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}
# largest |impl - fp32 reference| / max |reference| allowed, by compute dtype
TOLERANCE = {'fp32': 1e-4, 'bf16': 3e-2}
TRITON_KERNELS = os.path.join(os.path.dirname(os.path.abspath(dispatch.__file__)), 'impls',
                              'triton_kernels.py')
MAX_NUM_WARPS = 7  # pytorch/pytorch#173068: wrong results at num_warps >= 8
NO_CUDA = ('gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU '
           'machine, or add --device cpu --quick to smoke-test its logic on tiny sizes')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default=None, help='cuda or cuda:N (default), or cpu with '
                        '--quick')
    parser.add_argument('--quick', action='store_true', help='tiny sizes and one timed '
                        'iteration: checks the tool, measures nothing')
    parser.add_argument('--batch-size', type=int, default=None, help='networks (default 128)')
    parser.add_argument('--img-size', type=int, default=None, help='default 224')
    parser.add_argument('--layer-batch-size', type=int, default=None, help='default: '
                        '--batch-size')
    parser.add_argument('--iters', type=int, default=None, help='timed iterations (default 8)')
    parser.add_argument('--warmup', type=int, default=None, help='default 3')
    parser.add_argument('--max-seconds', type=float, default=None, help='per timed case '
                        '(default 4)')
    parser.add_argument('--impls', nargs='+', default=[n for n in dispatch.IMPLS],
                        choices=list(dispatch.IMPLS), help='default: all')
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument('--parity-models', nargs='*', default=None,
                        help='networks whose PyConv layer shapes are checked. Default: '
                        'pyconvresnet50 pyconvhgresnet50 (--quick: pyconvresnet18)')
    parser.add_argument('--layer-models', nargs='*', default=None,
                        help='networks whose PyConv layers are timed. Default: as '
                        '--parity-models')
    parser.add_argument('--models', nargs='*', default=None,
                        help='networks timed whole; ratios are to the first resnet<d>. '
                        'Default: resnet50 pyconvresnet50 pyconvhgresnet50 (--quick: resnet18 '
                        'pyconvresnet18)')
    parser.add_argument('--out-dir', default=os.path.join('work_dirs', 'gpu_check'))
    parser.add_argument('--write-table', nargs='?', const=dispatch.AUTO_TABLE_PATH, default=None,
                        metavar='PATH', help='update the auto table (default: the package\'s)')
    args = parser.parse_args(argv)
    if args.device is None:
        if not torch.cuda.is_available():
            print(NO_CUDA, file=sys.stderr)
            sys.exit(2)
        args.device = 'cuda'
    elif args.device.startswith('cuda') and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        sys.exit(2)
    elif args.device == 'cpu' and not args.quick:
        parser.error('--device cpu runs only with --quick (tiny sizes, to check the tool)')
    quick = args.quick
    defaults = dict(batch_size=2 if quick else 128, img_size=32 if quick else 224,
                    iters=1 if quick else 8, warmup=0 if quick else 3,
                    max_seconds=1.0 if quick else 4.0,
                    parity_models=['pyconvresnet18'] if quick else ['pyconvresnet50',
                                                                   'pyconvhgresnet50'],
                    models=['resnet18', 'pyconvresnet18'] if quick else [
                        'resnet50', 'pyconvresnet50', 'pyconvhgresnet50'])
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.layer_batch_size is None:
        args.layer_batch_size = args.batch_size
    if args.layer_models is None:
        args.layer_models = list(args.parity_models)
    # parity: batch, height, width (odd sizes, small)
    args.parity_size = (1, 7, 9) if quick else (2, 13, 17)
    for name in args.parity_models + args.layer_models + args.models:
        try:
            parse_arch_name(name)
        except ValueError as e:
            parser.error(str(e))
    return args


# ---- 1. Triton launch configs ----------------------------------------------------------------


def num_warps_problems(source: str, max_warps: int = MAX_NUM_WARPS) -> List[str]:
    """Where a Triton source sets ``num_warps`` above ``max_warps``: ``num_warps=`` keywords
    (launches, ``triton.Config``) and ``*NUM_WARPS*`` constants. A value that is neither a
    literal nor such a constant is a problem too (it cannot be checked)."""
    tree = ast.parse(source)
    constants: Dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    problems = [f'line {n.lineno}: {n.targets[0].id} = {n.value.value}' for n in ast.walk(tree)
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                and isinstance(n.targets[0], ast.Name) and 'NUM_WARPS' in n.targets[0].id
                and isinstance(n.value.value, int) and n.value.value > max_warps]
    for node in ast.walk(tree):
        if not isinstance(node, ast.keyword) or node.arg != 'num_warps':
            continue
        value = node.value
        if isinstance(value, ast.Name):
            value = ast.Constant(constants.get(value.id))
        if not isinstance(value, ast.Constant) or not isinstance(value.value, int):
            problems.append(f'line {node.value.lineno}: num_warps={ast.unparse(node.value)} '
                            'is not a constant this check can read')
        elif value.value > max_warps:
            problems.append(f'line {node.value.lineno}: num_warps={value.value}')
    return problems


# ---- layer shapes ----------------------------------------------------------------------------


def network_layers(name: str, img_size: int,
                   device: torch.device) -> List[Tuple[str, PyConvPlan, Tuple[int, int]]]:
    """(label, plan, input size) of every distinct PyConv layer of a network at ``img_size``,
    in network order, found by one batch-1 forward with hooks."""
    model = build_classifier(name).backbone.to(device).eval()
    found: Dict[Tuple[PyConvPlan, Tuple[int, int]], str] = {}

    def hook(label):
        def record(module, inputs):
            found.setdefault((module.plan, tuple(inputs[0].shape[2:])), label)
        return record

    for label, module in model.named_modules():
        if isinstance(module, PyConv2d):
            module.register_forward_pre_hook(hook(f'{name} {label}'))
    with torch.no_grad():
        model(torch.zeros(1, 3, img_size, img_size, device=device))
    return [(label, plan, size) for (plan, size), label in found.items()]


def parity_plans(args, device) -> List[Tuple[str, PyConvPlan, bool]]:
    """(label, plan, bias) to check: each layer shape of the parity models as it is (a bias on
    the strided ones), and each stage plan again at stride 1, dilation 2."""
    cases, seen = [], set()
    for name in args.parity_models:
        for label, plan, _ in network_layers(name, args.img_size, device):
            dilated = PyConvPlan.create(plan.in_channels, list(plan.level_channels), plan.kernels,
                                        plan.groups, dilation=2)
            for what, p, bias in ((label, plan, max(plan.stride) > 1),
                                  (f'{label} dilation 2', dilated, False)):
                if p not in seen:
                    seen.add(p)
                    cases.append((what, p, bias))
    return cases


def _layer(plan: PyConvPlan, bias: bool, device, layout: str) -> PyConv2d:
    torch.manual_seed(0)
    layer = PyConv2d(plan.in_channels, list(plan.level_channels), plan.kernels, plan.stride,
                     dilation=plan.dilation, groups=plan.groups, bias=bias)
    return layer.to(device).to(memory_format=LAYOUTS[layout])


def _tensors(plan: PyConvPlan, batch: int, size, device, layout: str):
    torch.manual_seed(1)
    x = torch.randn(batch, plan.in_channels, *size, device=device)
    grad = torch.randn(batch, plan.out_channels, *plan.output_size(*size), device=device)
    return (x.contiguous(memory_format=LAYOUTS[layout]),
            grad.contiguous(memory_format=LAYOUTS[layout]))


# ---- 2. parity -------------------------------------------------------------------------------


def parity_row(layer: PyConv2d, impl: str, dtype: str, layout: str, x: torch.Tensor,
               grad: torch.Tensor, reference: List[torch.Tensor], device) -> Dict:
    """One check: ``impl`` (under autocast to bf16 for ``dtype='bf16'``) against the fp32
    reference outputs, output and gradients; a channels_last input keeps its layout."""
    row = dict(key=dispatch.table_key(layer.plan, COMPUTE_DTYPES[dtype], layout), impl=impl,
               dtype=dtype, layout=layout, bias=layer.levels[0].bias is not None)
    try:
        outs = benchmark._layer_outputs(layer, impl, x, grad, benchmark.DTYPES[dtype], device)
        row['error'] = max(benchmark._rel_err(a, b) for a, b in zip(outs, reference))
        row['ok'] = row['error'] <= TOLERANCE[dtype]
        if layout == 'channels_last' and not outs[0].is_contiguous(
                memory_format=torch.channels_last):
            row.update(ok=False, failure='lost channels_last')
    except Exception as e:  # noqa: BLE001 (a failure, reported; the run goes on)
        traceback.print_exc()
        row.update(ok=False, failure=benchmark._error_text(e))
    return row


def check_parity(args, device, log) -> Dict:
    batch, *size = args.parity_size
    results, unavailable = [], {}
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.benchmark = False  # no algorithm search for shapes seen once
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for label, plan, bias in parity_plans(args, device):
            for layout in ('contiguous', 'channels_last'):
                layer = _layer(plan, bias, device, layout)
                x, grad = _tensors(plan, batch, size, device, layout)
                reference = benchmark._layer_outputs(layer, 'reference', x, grad, None, device)
                for impl in args.impls:
                    reason = dispatch.IMPLS[impl].unavailable(x, plan)
                    if reason is not None:
                        unavailable[impl] = reason
                        continue
                    for dtype in ('fp32', 'bf16') if impl != 'reference' else ('bf16', ):
                        row = parity_row(layer, impl, dtype, layout, x, grad, reference, device)
                        row['layer'] = label
                        results.append(row)
                        if not row['ok']:
                            log(f'PARITY FAILURE {row}')
                benchmark._free(device)
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved
    failures = [r for r in results if not r['ok']]
    log(f'parity: {len(results)} checks, {len(failures)} failures')
    return dict(checks=len(results), failures=failures, unavailable=unavailable,
                tolerance=TOLERANCE, results=results)


# ---- 3. per layer ----------------------------------------------------------------------------


def time_layer(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, dtype, device,
               timer: benchmark.Timer) -> Dict[str, float]:
    """Milliseconds of the forward, of the input gradient alone (weights frozen) and of the
    weight gradient alone (input without gradient); the backward ones from one retained graph."""
    params = list(module.parameters())

    def forward(inputs):
        with benchmark._autocast(device, dtype):
            return module(inputs)

    times = dict(forward=timer(lambda: forward(x))[0])
    for p in params:
        p.requires_grad_(False)
    x_grad = x.detach().requires_grad_()
    out_x = forward(x_grad)
    g = grad.to(out_x.dtype)
    times['input_grad'] = timer(
        lambda: torch.autograd.grad(out_x, x_grad, g, retain_graph=True))[0]
    for p in params:
        p.requires_grad_(True)
    out_w = forward(x)
    times['weight_grad'] = timer(
        lambda: torch.autograd.grad(out_w, params, g, retain_graph=True))[0]
    times['total'] = times['forward'] + times['input_grad'] + times['weight_grad']
    return times

def measure(row: Dict, device: torch.device, timed: Callable[[], Dict]) -> bool:
    """Add what ``timed()`` measures to ``row``; on an error, its text as ``row['failure']``
    (the traceback printed) so the other measurements go on. Device memory is freed either
    way. Returns whether it succeeded."""
    try:
        row.update(timed())
        return True
    except Exception as e:  # noqa: BLE001 -- one failed measurement must not stop the check
        traceback.print_exc()
        row['failure'] = benchmark._error_text(e)
        return False
    finally:
        benchmark._free(device)



def parity_status(parity: Dict) -> Dict[Tuple[str, str], bool]:
    """(impl, table key) -> whether every parity check of it passed (the fp32 reference is
    what the others are checked against: it passes)."""
    status: Dict[Tuple[str, str], bool] = {}
    for r in parity['results']:
        status[(r['impl'], r['key'])] = status.get((r['impl'], r['key']), True) and r['ok']
        if r['dtype'] == 'bf16':
            status.setdefault(('reference', r['key'].replace(' bf16 ', ' fp32 ')), True)
    return status


def time_layers(args, device, timer: benchmark.Timer, status: Dict, log) -> List[Dict]:
    rows, seen = [], set()
    for name in args.layer_models:
        for label, plan, size in network_layers(name, args.img_size, device):
            if (plan, size) in seen:
                continue
            seen.add((plan, size))
            for setting in args.settings:
                dtype, layout = SETTINGS[setting]
                layer = _layer(plan, False, device, layout)
                conv = nn.Conv2d(plan.in_channels, plan.out_channels, 3, plan.stride, 1,
                                 bias=False).to(device).to(memory_format=LAYOUTS[layout])
                x, grad = _tensors(plan, args.layer_batch_size, size, device, layout)
                for impl in [*args.impls, 'conv3x3']:
                    row = dict(layer=label,
                               key=dispatch.table_key(plan, COMPUTE_DTYPES[dtype], layout),
                               input=f'{plan.in_channels}x{size[0]}x{size[1]}', impl=impl,
                               setting=setting)
                    reason = (None if impl == 'conv3x3' else
                              dispatch.IMPLS[impl].unavailable(x, plan))
                    if reason is not None:
                        continue
                    if impl != 'conv3x3':
                        layer.impl = impl
                    module = conv if impl == 'conv3x3' else layer
                    if measure(row, device, lambda: time_layer(
                            module, x, grad, benchmark.DTYPES[dtype], device, timer)):
                        row['parity_ok'] = status.get((impl, row['key']))  # None: unchecked
                    rows.append(row)
                    log(f'{label} {setting} {impl}: {row.get("total", row.get("failure"))}')
    return rows


# ---- 4. networks -----------------------------------------------------------------------------


def bench_network(model, impl: str, mode: str, dtype: str, shape, timer: benchmark.Timer,
                  device: torch.device) -> Dict:
    """Images/s and peak memory of one network in one setting and mode."""
    with pyconv_impl('auto' if impl == '-' else impl):
        return dict(zip(('img_per_s', 'peak_gib'), benchmark.bench_model(
            model, mode, benchmark.DTYPES[dtype], shape, timer, device)))


def time_networks(args, device, timer: benchmark.Timer, log) -> List[Dict]:
    source = benchmark.resnet_source()
    rows = []
    for name in args.models:
        is_resnet = parse_arch_name(name)[0] == 'resnet'
        torch.manual_seed(0)
        model = build_classifier(name, resnet=source).to(device)
        for setting in args.settings:
            dtype, layout = SETTINGS[setting]
            model = model.to(memory_format=LAYOUTS[layout])
            shape = argparse.Namespace(batch_size=args.batch_size, img_size=args.img_size,
                                       memory_format=layout)
            for impl in ['-'] if is_resnet else [*args.impls, 'auto']:
                for mode in ('train', 'infer'):
                    row = dict(model=name, source=source if is_resnet else 'mmpyconv', impl=impl,
                               setting=setting, mode=mode)
                    measure(row, device, functools.partial(
                        bench_network, model, impl, mode, dtype, shape, timer, device))
                    rows.append(row)
                    log(f'{name} {impl} {setting} {mode}: '
                        f'{row.get("img_per_s", row.get("failure"))}')
        del model
        benchmark._free(device)
    baseline = next((n for n in args.models if parse_arch_name(n)[0] == 'resnet'), None)
    base = {(r['setting'], r['mode']): r.get('img_per_s') for r in rows if r['model'] == baseline}
    for row in rows:
        ref = base.get((row['setting'], row['mode']))
        if ref and 'img_per_s' in row:
            row['vs_baseline'] = row['img_per_s'] / ref
            row['baseline'] = baseline
    return rows


# ---- the auto table --------------------------------------------------------------------------


def table_entries(layer_rows: List[Dict]) -> Tuple[Dict[str, str], Dict[str, Dict]]:
    """Per layer shape and setting (the table key): the fastest implementation (forward + both
    gradients) that passed parity, and every implementation's time."""
    times: Dict[str, Dict[str, float]] = {}
    for row in layer_rows:
        if row['impl'] in dispatch.IMPLS and row.get('parity_ok') and 'total' in row:
            times.setdefault(row['key'], {})[row['impl']] = round(row['total'], 4)
    return {key: min(t, key=t.get) for key, t in times.items()}, times


def merge_table(existing: Optional[Dict], new: Dict) -> Dict:
    """``existing`` (or an empty table) with ``new`` replacing its table of the same device and
    torch version; other devices' tables are kept."""
    table = dict(existing or {})
    if table.get('schema') != dispatch.AUTO_TABLE_SCHEMA:
        table = {'schema': dispatch.AUTO_TABLE_SCHEMA}
    table['tables'] = [t for t in table.get('tables', []) if (t.get('device'), t.get('torch'))
                       != (new['device'], new['torch'])] + [new]
    return table


def write_table(path: str, device_name: str, layer_rows: List[Dict], args) -> Dict:
    entries, times = table_entries(layer_rows)
    new = dict(device=device_name, torch=torch.__version__, cuda=torch.version.cuda,
               measured=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d'),
               by=f'tools/analysis/gpu_check.py, layer batch {args.layer_batch_size}, '
               f'{args.img_size} px; fastest forward + input grad + weight grad that passed parity',
               entries=dict(sorted(entries.items())), times_ms=dict(sorted(times.items())))
    existing = None
    if os.path.exists(path):
        with open(path) as f:
            existing = json.load(f)
    table = merge_table(existing, new)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(table, f, indent=2)
        f.write('\n')
    return new


# ---- report ----------------------------------------------------------------------------------


def _row(cells) -> str:
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def markdown(report: Dict) -> str:
    env = report['environment']
    lines = ['## PyConv GPU check', '',
             f"{env['device']}; torch {env['torch']}; triton {env['triton']}; "
             f"{env['timing']}", '']
    warps = report['triton_num_warps']
    lines.append(f"Triton launch configs (num_warps <= {MAX_NUM_WARPS}): "
                 + ('ok' if not warps else 'FAILED: ' + '; '.join(warps)))
    parity = report['parity']
    lines += ['', f"### Parity: {parity['checks']} checks, {len(parity['failures'])} failures", '',
              _row(['impl', 'dtype', 'layout', 'checks', 'failures', 'max rel err']),
              _row(['---'] * 6)]
    groups: Dict[Tuple[str, str, str], List[Dict]] = {}
    for r in parity['results']:
        groups.setdefault((r['impl'], r['dtype'], r['layout']), []).append(r)
    for (impl, dtype, layout), rs in groups.items():
        errors = [r['error'] for r in rs if 'error' in r]
        lines.append(_row([impl, dtype, layout, len(rs), sum(not r['ok'] for r in rs),
                           f'{max(errors):.1e}' if errors else '-']))
    for impl, reason in parity['unavailable'].items():
        lines.append(f'\n{impl} not checked: {reason}')
    lines += [f'\n{note}' for note in report.get('left_out', [])]
    for r in parity['failures']:
        lines.append(f"\nFAILED: {r['impl']} {r['dtype']} {r['layout']} {r['layer']}: "
                     f"{r.get('failure') or 'error %.1e' % r['error']}")

    nets = report['networks']
    if nets:
        settings = list(dict.fromkeys((r['mode'], r['setting']) for r in nets))
        baseline = next((r['baseline'] for r in nets if 'baseline' in r), 'none')
        lines += ['', f"### Networks: images/s and ratio to {baseline}, batch "
                  f"{env['batch_size']}, {env['img_size']} px", '',
                  _row(['model', 'impl'] + [f'{m} {s}' for m, s in settings]),
                  _row(['---'] * (2 + len(settings)))]
        table: Dict[Tuple[str, str], Dict] = {}
        for r in nets:
            cell = (f"{r['img_per_s']:,.1f} ({r['vs_baseline']:.2f}x)" if 'vs_baseline' in r
                    else f"{r['img_per_s']:,.1f}" if 'img_per_s' in r else r['failure'])
            table.setdefault((r['model'], r['impl']), {})[(r['mode'], r['setting'])] = cell
        for (model, impl), cells in table.items():
            lines.append(_row([model, impl] + [cells.get(s, '-') for s in settings]))

    layers = report['layers']
    if layers:
        lines += ['', f"### Layers: ms, batch {env['layer_batch_size']}; ratio: reference's "
                  'total time over this one (above 1: faster), and the 3x3 conv\'s', '',
                  _row(['layer', 'input', 'setting', 'impl', 'forward', 'input grad',
                        'weight grad', 'total', 'vs reference', 'vs 3x3 conv']),
                  _row(['---'] * 10)]
        base: Dict[Tuple[str, str], Dict[str, float]] = {}
        for r in layers:
            if 'total' in r:
                base.setdefault((r['layer'], r['setting']), {})[r['impl']] = r['total']
        for r in layers:
            if 'total' not in r:
                lines.append(_row([r['layer'], r['input'], r['setting'], r['impl'],
                                   r['failure'], '-', '-', '-', '-', '-']))
                continue
            b = base[(r['layer'], r['setting'])]
            ratios = [f"{b[k] / r['total']:.2f}x" if k in b else '-'
                      for k in ('reference', 'conv3x3')]
            lines.append(_row([r['layer'], r['input'], r['setting'], r['impl']] + [
                f"{r[k]:.3f}" for k in ('forward', 'input_grad', 'weight_grad', 'total')
            ] + ratios))
    if report.get('table'):
        lines += ['', f"Auto table updated: {report['table_path']} "
                  f"({len(report['table']['entries'])} entries for {report['table']['device']})"]
    return '\n'.join(lines) + '\n'


def environment(args, device: torch.device) -> Dict:
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = 'not installed'
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
        timing = (f'CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, CUDA '
                  'events, cudnn.benchmark on, cudnn.allow_tf32='
                  f'{torch.backends.cudnn.allow_tf32} while timing (off for parity)')
    else:
        name = f'cpu: {platform.processor() or platform.machine()}'
        timing = 'wall clock (--quick: checks the tool, measures nothing)'
    return dict(device=name, torch=torch.__version__, triton=triton_version, timing=timing,
                python=platform.python_version(), argv=sys.argv[1:], quick=args.quick,
                batch_size=args.batch_size, img_size=args.img_size,
                layer_batch_size=args.layer_batch_size, iters=args.iters, warmup=args.warmup,
                max_seconds=args.max_seconds, settings={s: SETTINGS[s] for s in args.settings})


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)  # --quick on a CI machine: threads would only wait on each other
    started = time.perf_counter()

    def log(message: str):
        print(f'[{time.perf_counter() - started:7.1f} s] {message}', file=sys.stderr, flush=True)

    report = dict(environment=environment(args, device), elapsed_s={})
    with open(TRITON_KERNELS) as f:
        report['triton_num_warps'] = num_warps_problems(f.read())
    phase = time.perf_counter()
    report['parity'] = check_parity(args, device, log)
    report['elapsed_s']['parity'] = round(time.perf_counter() - phase, 1)

    # what cannot run here (Triton without CUDA or without triton) is timed nowhere
    report['left_out'] = benchmark.drop_unavailable_impls(args, device)[1:]
    torch.backends.cudnn.benchmark = device.type == 'cuda'
    timer = benchmark.Timer(device, args.warmup, args.iters, args.max_seconds)
    phase = time.perf_counter()
    report['layers'] = time_layers(args, device, timer, parity_status(report['parity']), log)
    report['elapsed_s']['layers'] = round(time.perf_counter() - phase, 1)
    phase = time.perf_counter()
    report['networks'] = time_networks(args, device, timer, log)
    report['elapsed_s']['networks'] = round(time.perf_counter() - phase, 1)
    if args.write_table:
        report['table'] = write_table(args.write_table, report['environment']['device'],
                                      report['layers'], args)
        report['table_path'] = args.write_table
    report['elapsed_s']['total'] = round(time.perf_counter() - started, 1)

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=1)
    text = markdown(report)
    with open(os.path.join(args.out_dir, 'gpu_check.md'), 'w') as f:
        f.write(text)
    print(text)
    ok = not report['parity']['failures'] and not report['triton_num_warps']
    log(f"{'passed' if ok else 'FAILED'}; wrote {args.out_dir}/gpu_check.json and .md in "
        f"{report['elapsed_s']['total']:.0f} s")
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
