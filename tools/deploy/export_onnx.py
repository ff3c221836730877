"""Export a config's model to ONNX, check the graph and its onnxruntime output against PyTorch.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT --out model.onnx
        [--shape H [W]] [--frames T] [--batch N] [--dynamic] [--opset N] [--simplify]
        [--output {logits,argmax}] [--tolerance R] [--cfg-options KEY=VALUE ...]

The model is built in the toolbox of the config's ``default_scope`` and loads CHECKPOINT. What
the ONNX graph computes, per toolbox (its input is the preprocessed tensor: the config's
``data_preprocessor`` mean/std and channel order are applied outside the graph):

* mmpretrain classifiers: the class logits, ``model(x, mode='tensor')`` (no softmax).
* mmseg segmentors: the decode head's logits resized to the input size (as ``encode_decode``
  does), or with ``--output argmax`` the label map (N, 1, H, W, int64).
* mmdet single-stage detectors: the raw head outputs before post-processing,
  ``model(x, mode='tensor')`` flattened (e.g. RetinaNet: 5 class-score maps, then 5 box maps).
  Box decoding and NMS are not in the graph (mmdeploy's "end2end" graphs put them there with its
  own custom ops). Two-stage detectors are refused: their RoI stage needs post-processed
  proposals.
* mmaction2 recognizers: the class scores of each view, ``cls_head(extract_feat(x))``; input
  (N, T, 3, H, W) for a 2D recognizer (TSN), (N, 1, 3, T, H, W) for a 3D one (I3D).

Every PyConv is exported in its reference form (one grouped conv per level), whatever ``impl``
the config sets. The graph is checked by ``onnx.checker``; onnxruntime (CPU) runs it on the
PyTorch input and the largest absolute difference is reported; above ``--tolerance`` times the
largest PyTorch output magnitude the tool fails (exit status 1). The file is written to a
temporary name beside ``--out`` and renamed only after every check passed: a failed export
leaves nothing. A checkpoint that does not fit the config, or a model that cannot be exported,
is refused with one line (exit status 2) before any file is written.
"""
import argparse
import contextlib
import os
import os.path as osp
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmpyconv  # noqa: F401  (registers mmpyconv's modules)
from mmpyconv.ops import PyConv2d, PyConv3d
from mmpyconv.runner.errors import UsageError, run_tool

DEFAULT_FRAMES = {'Recognizer2D': 8, 'Recognizer3D': 32}


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Export a config\'s model to ONNX and check it with onnxruntime.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file of the config\'s model')
    parser.add_argument('--out', required=True, help='the ONNX file to write')
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='input size: H (square) or H W. Default: 224')
    parser.add_argument('--frames', type=int, default=None,
                        help='frames of a video recognizer\'s clip (default 8 for a 2D one, '
                        '32 for a 3D one)')
    parser.add_argument('--batch', type=int, default=1, help='batch of the export input')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch and spatial axes (frames stay fixed)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset. Default: 17')
    parser.add_argument('--simplify', action='store_true',
                        help='simplify the graph with onnxsim (pip install onnxsim)')
    parser.add_argument('--output', choices=['logits', 'argmax'], default='logits',
                        help='segmentors: the logits or the label map. Default: logits')
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest onnxruntime-PyTorch difference allowed, relative to the '
                        'largest output magnitude (argmax: the fraction of differing pixels). '
                        'Default: 1e-3')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random input')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. model.backbone.depth=18')
    args = parser.parse_args(argv)
    if len(args.shape) not in (1, 2) or min(args.shape) <= 0:
        parser.error(f'--shape takes one or two positive ints, got {args.shape}')
    if args.batch <= 0 or (args.frames is not None and args.frames <= 0):
        parser.error('--batch and --frames must be positive')
    return args


# ------------------------------------------------------------------ what the graph computes
class SegmentorLogits(nn.Module):
    """mmseg EncoderDecoder: decode-head logits resized to the input (or their argmax)."""

    def __init__(self, model: nn.Module, argmax: bool = False):
        super().__init__()
        self.model = model
        self.argmax = argmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model.decode_head(self.model.extract_feat(x))
        logits = F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                               align_corners=self.model.decode_head.align_corners)
        return logits.argmax(dim=1, keepdim=True) if self.argmax else logits


class RecognizerScores(nn.Module):
    """mmaction2 recognizer: the class scores of each view of a clip."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, kwargs = self.model.extract_feat(x, test_mode=True)
        kwargs = {k: v for k, v in kwargs.items() if k != 'loss_aux'}
        return self.model.cls_head(feats, **kwargs)


class TensorMode(nn.Module):
    """``model(x, mode='tensor')`` (classifiers, single-stage detectors), flattened."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return tuple(flatten(self.model(x, mode='tensor')))


def flatten(out) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for item in out for t in flatten(item)]


def family(model: nn.Module) -> str:
    module = type(model).__module__.split('.')[0]
    return {'mmpretrain': 'classifier', 'mmseg': 'segmentor', 'mmdet': 'detector',
            'mmaction': 'recognizer'}.get(module, module)


def export_module(model: nn.Module, config: str, output: str = 'logits') -> nn.Module:
    """The module whose forward is exported, for the config's model; UsageError if none."""
    kind = family(model)
    name = type(model).__name__
    if kind == 'segmentor':
        if not (hasattr(model, 'extract_feat') and hasattr(model, 'decode_head')):
            raise UsageError(f'the model of {config} ({name}) cannot be exported: only '
                             'encoder-decoder segmentors are')
        return SegmentorLogits(model, argmax=output == 'argmax')
    if output == 'argmax':
        raise UsageError(f'--output argmax is for segmentors; {config} builds a {name}')
    if kind == 'recognizer':
        if name not in DEFAULT_FRAMES:
            raise UsageError(f'the model of {config} ({name}) cannot be exported: only '
                             f'{" and ".join(DEFAULT_FRAMES)} recognizers are')
        return RecognizerScores(model)
    if kind == 'detector' and (hasattr(model, 'roi_head') or hasattr(model, 'rpn_head')):
        raise UsageError(
            f'the model of {config} ({name}) cannot be exported: a two-stage detector\'s RoI '
            'head needs post-processed proposals (NMS, RoIAlign), which export only with '
            "mmdeploy's custom ops; single-stage detectors (RetinaNet, PyConvSSD) export")
    if kind in ('classifier', 'detector'):
        return TensorMode(model)
    raise UsageError(f'the model of {config} ({name}) cannot be exported: not a model of '
                     'mmpretrain, mmseg, mmdet or mmaction2')


def example_input(model: nn.Module, shape: Tuple[int, int], frames: Optional[int] = None,
                  batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A random input of the model's layout (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    name = type(model).__name__
    if name == 'Recognizer2D':
        size = (batch, frames or DEFAULT_FRAMES[name], 3, *shape)
    elif name == 'Recognizer3D':
        size = (batch, 1, 3, frames or DEFAULT_FRAMES[name], *shape)
    else:
        size = (batch, 3, *shape)
    return torch.randn(size, generator=generator)


def dynamic_axes(x: torch.Tensor, outputs: Sequence[torch.Tensor],
                 names: Sequence[str]) -> Dict[str, Dict[int, str]]:
    """Batch and spatial axes (the last two) of the input, and of the outputs' matching ones."""
    axes = {'input': {0: 'batch', x.dim() - 2: 'height', x.dim() - 1: 'width'}}
    for name, out in zip(names, outputs):
        axes[name] = {0: 'batch'}
        if out.dim() >= 4:
            axes[name].update({out.dim() - 2: f'{name}_height', out.dim() - 1: f'{name}_width'})
    return axes


@contextlib.contextmanager
def reference_pyconvs(model: nn.Module) -> Iterator[int]:
    """Every PyConv of ``model`` computed in the reference form inside the block (one grouped
    conv per level); yields how many there are."""
    layers = [m for m in model.modules() if isinstance(m, (PyConv2d, PyConv3d))]
    saved = [m.impl for m in layers]
    for m in layers:
        m.impl = 'reference'
    try:
        yield len(layers)
    finally:
        for m, impl in zip(layers, saved):
            m.impl = impl


class TraceableAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d(bins)`` as two matrix products whose pooling matrices are computed
    from the input size in the graph: the same bins (start ``floor(i * size / bins)``, end
    ``ceil((i + 1) * size / bins)``), also where the bins do not divide the size or outnumber it,
    which the exporter's AdaptiveAvgPool cannot express under dynamic spatial axes."""

    def __init__(self, output_size):
        super().__init__()
        size = output_size if isinstance(output_size, (tuple, list)) else (output_size, ) * 2
        self.output_size = tuple(size)

    @staticmethod
    def _matrix(size: torch.Tensor, bins: int, like: torch.Tensor) -> torch.Tensor:
        i = torch.arange(bins, device=like.device)
        start = torch.div(i * size, bins, rounding_mode='floor')
        end = torch.div((i + 1) * size + bins - 1, bins, rounding_mode='floor')
        pos = torch.arange(size, device=like.device)
        inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
        return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = torch._shape_as_tensor(x)
        rows = self._matrix(shape[-2], self.output_size[0] or x.shape[-2], x)
        cols = self._matrix(shape[-1], self.output_size[1] or x.shape[-1], x)
        return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


@contextlib.contextmanager
def traceable_pools(model: nn.Module) -> Iterator[int]:
    """Every ``nn.AdaptiveAvgPool2d`` of ``model`` to more than one bin replaced by
    :class:`TraceableAdaptiveAvgPool2d` inside the block (PyConvPH's global context); yields
    how many."""
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size not in (
                    1, (1, 1), [1, 1]):
                setattr(parent, name, TraceableAdaptiveAvgPool2d(child.output_size))
                swapped.append((parent, name, child))
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


# ------------------------------------------------------------------ the steps
def load_model(config: str, checkpoint: str, cfg_options=None) -> Tuple[nn.Module, object]:
    """The config's model with the checkpoint loaded, in eval mode; UsageError if the config or
    the checkpoint is wrong."""
    from mmpyconv.convert import extract_state_dict
    from mmpyconv.runner.args import load_config
    from mmpyconv.runner.checkpoints import load_checkpoint_file
    from mmpyconv.runner.preflight import build_model, check_checkpoint
    cfg = load_config(config, cfg_options)
    if 'model' not in cfg:
        raise UsageError(f'{config} has no `model` to export')
    model = build_model(cfg)
    if not osp.isfile(checkpoint):
        raise UsageError(f'checkpoint {checkpoint} does not exist')
    check_checkpoint(model, checkpoint, config, 'export')
    state = extract_state_dict(load_checkpoint_file(checkpoint, 'checkpoint'))
    model.load_state_dict(state, strict=False)
    return model.eval(), cfg


def run_onnxruntime(path: str, x: torch.Tensor, threads: int = 0) -> List[np.ndarray]:
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})


def compare(expected: Sequence[torch.Tensor], got: Sequence[np.ndarray],
            argmax: bool = False) -> Tuple[float, float]:
    """(largest absolute difference, what it is measured against): the largest output
    magnitude; for a label map, (fraction of differing labels, 1)."""
    if len(expected) != len(got):
        raise RuntimeError(f'onnxruntime gave {len(got)} outputs, PyTorch {len(expected)}')
    if argmax:
        ref, out = expected[0].numpy(), got[0]
        return float((ref != out).mean()), 1.0
    diff, scale = 0.0, 0.0
    for ref, out in zip(expected, got):
        ref = ref.numpy()
        if ref.shape != out.shape:
            raise RuntimeError(f'onnxruntime output shape {out.shape}, PyTorch {ref.shape}')
        diff = max(diff, float(np.abs(ref.astype(np.float64) - out).max(initial=0.0)))
        scale = max(scale, float(np.abs(ref).max(initial=0.0)))
    return diff, max(scale, 1e-6)


def count_convs(path: str) -> int:
    import onnx
    return sum(node.op_type == 'Conv' for node in onnx.load(path).graph.node)


def export(module: nn.Module, x: torch.Tensor, path: str, opset: int, dynamic: bool,
           config: str) -> List[str]:
    """torch.onnx.export (the TorchScript exporter) to ``path``; the output names."""
    with torch.no_grad():
        outputs = module(x)
    outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    names = ['output'] if len(outputs) == 1 else [f'output_{i}' for i in range(len(outputs))]
    try:
        with torch.no_grad():
            torch.onnx.export(module, (x, ), path, input_names=['input'], output_names=names,
                              opset_version=opset, do_constant_folding=True, dynamo=False,
                              dynamic_axes=dynamic_axes(x, outputs, names) if dynamic else None)
    except Exception as e:  # noqa: BLE001 -- any exporter failure is reported in one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f'the model of {config} ({type(module).__name__}) cannot be exported '
                         f'to ONNX: {type(e).__name__}: {first}') from e
    return names


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv=None) -> int:
    args = parse_args(argv)
    shape = (args.shape[0], args.shape[-1])
    out = osp.abspath(args.out)
    if osp.isdir(out):
        raise UsageError(f'--out {args.out} is a folder: name the .onnx file to write')
    if not osp.isdir(osp.dirname(out)):
        raise UsageError(f'--out {args.out}: the folder {osp.dirname(out)} does not exist')
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise UsageError(f'{e.name} is not installed: pip install onnx onnxruntime') from e
    if args.simplify:
        try:
            import onnxsim
        except ImportError as e:
            raise UsageError('--simplify needs onnxsim: pip install onnxsim') from e

    model, _ = load_model(args.config, args.checkpoint, args.cfg_options)
    module = export_module(model, args.config, args.output).eval()
    x = example_input(model, shape, args.frames, args.batch, args.seed)
    fd, tmp = tempfile.mkstemp(suffix='.onnx.tmp', prefix='.' + osp.basename(out) + '.',
                               dir=osp.dirname(out))
    os.close(fd)
    try:
        with reference_pyconvs(module) as n_pyconv:
            try:
                with torch.no_grad():
                    expected = module(x)
            except Exception as e:  # noqa: BLE001
                first = (str(e).strip().splitlines() or [''])[0]
                raise UsageError(f'the model of {args.config} ({type(model).__name__}) cannot '
                                 f'run on a {tuple(x.shape)} input: {type(e).__name__}: '
                                 f'{first}') from e
            expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
            start = time.perf_counter()
            with traceable_pools(module):
                names = export(module, x, tmp, args.opset, args.dynamic, args.config)
        onnx.checker.check_model(tmp, full_check=True)
        if args.simplify:
            simplified, ok = onnxsim.simplify(onnx.load(tmp))
            if not ok:
                print('error: onnxsim could not validate the simplified graph', file=sys.stderr)
                return 1
            onnx.save(simplified, tmp)
            onnx.checker.check_model(tmp, full_check=True)
        got = run_onnxruntime(tmp, x)
        diff, scale = compare(expected, got, argmax=args.output == 'argmax')
        what = 'labels differing' if args.output == 'argmax' else 'max abs difference'
        print(f'{family(model)} {type(model).__name__}: input {tuple(x.shape)}, outputs '
              f'{", ".join(f"{n} {tuple(o.shape)}" for n, o in zip(names, expected))}; '
              f'{n_pyconv} PyConvs in reference form, {count_convs(tmp)} Conv nodes; exported '
              f'in {time.perf_counter() - start:.1f} s')
        print(f'onnxruntime vs PyTorch: {what} {diff:.3g} (output scale {scale:.3g}, '
              f'relative {diff / scale:.3g}, tolerance {args.tolerance:g})')
        if diff > args.tolerance * scale:
            print(f'error: onnxruntime differs from PyTorch by {diff:.3g} > {args.tolerance:g} x '
                  f'{scale:.3g}; nothing written', file=sys.stderr)
            return 1
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
        print(f'wrote {args.out}')
        return 0
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


if __name__ == '__main__':
    sys.exit(run_tool(main))
