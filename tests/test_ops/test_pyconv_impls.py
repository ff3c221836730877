"""Every PyConv implementation against the per-level reference, values and gradients.

The fused Triton kernels run on CUDA when there is a GPU, otherwise on the CPU through Triton's
interpreter, in a child pytest process started with ``TRITON_INTERPRET=1``
(:func:`test_triton_in_interpreter`). The interpreter is slow, so their cases keep batch and image
tiny; channel widths stay those of the real plans.
"""
import copy
import json
import os
import subprocess
import sys
import textwrap
from typing import List, Sequence, Tuple

import pytest
import torch
from mmcv.cnn import build_conv_layer

from mmpyconv.models import PyConvHGResNet, PyConvResNet
from mmpyconv.ops import PyConv2d, PyConvPlan, dispatch

CUDA = torch.cuda.is_available()

# (name, width, kernels, groups): PyConvResNet's and PyConvHGResNet's stage plans.
STAGE_PLANS = [
    ('resnet-stage1', 64, (3, 5, 7, 9), (1, 4, 8, 16)),
    ('resnet-stage2', 128, (3, 5, 7), (1, 4, 8)),
    ('resnet-stage3', 256, (3, 5), (1, 4)),
    ('resnet-stage4', 64, (3, ), (1, )),
    ('hg-stage1', 128, (3, 5, 7, 9), (32, 32, 32, 32)),
    ('hg-stage2', 256, (3, 5, 7), (32, 64, 64)),
    ('hg-stage3', 512, (3, 5), (32, 64)),
    ('hg-stage4', 64, (3, ), (32, )),
]
# (stride, dilation, height, width)
GEOMETRIES = [(1, 1, 8, 8), (2, 1, 13, 17), (1, 2, 13, 17)]


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest expected magnitude."""
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item()


def _forward_backward(module: PyConv2d, impl: str, x: torch.Tensor,
                      grad_out: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Output and [input grad, then each level's weight (and bias) grad] under ``impl``."""
    module.impl = impl
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = module(x)
    out.backward(grad_out)
    grads = [x.grad] + [p.grad for p in module.levels.parameters()]
    assert all(g is not None for g in grads), f'{impl}: a gradient did not reach its tensor'
    return out.detach(), grads


def _check_against_reference(module: PyConv2d, impl: str, x: torch.Tensor, tol: float) -> None:
    """``impl`` equals the reference: output, input grad, every level's weight/bias grad.

    Low-precision modules are compared with the fp32 reference on the same (rounded) values.
    """
    torch.manual_seed(1)
    out_shape = (x.shape[0], module.out_channels, *module.plan.output_size(*x.shape[2:]))
    grad_out = torch.randn(out_shape, device=x.device).to(x.dtype)
    ref_module = copy.deepcopy(module).float()
    ref_out, ref_grads = _forward_backward(ref_module, 'reference', x.float(), grad_out.float())
    out, grads = _forward_backward(module, impl, x, grad_out)

    assert out.shape == ref_out.shape and out.dtype == x.dtype
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        assert out.is_contiguous(memory_format=torch.channels_last), f'{impl} lost channels_last'
    names = ['output', 'input grad'] + [f'{n} grad' for n, _ in module.levels.named_parameters()]
    for name, a, b in zip(names, [out] + grads, [ref_out] + ref_grads):
        assert a.shape == b.shape, f'{impl} {name}: shape {tuple(a.shape)} != {tuple(b.shape)}'
        err = _rel_err(a, b)
        assert err <= tol, f'{impl} {name}: relative error {err:.2e} > {tol:.0e}'


def _make(width: int, kernels: Sequence[int], groups: Sequence[int], stride: int = 1,
          dilation: int = 1, bias: bool = False, out_width: int = None,
          device: str = 'cpu') -> PyConv2d:
    torch.manual_seed(0)
    return PyConv2d(width, out_width or width, tuple(kernels), stride=stride, dilation=dilation,
                    groups=tuple(groups), bias=bias).to(device)


def _input(batch: int, width: int, height: int, width_px: int, channels_last: bool = False,
           device: str = 'cpu', dtype=torch.float32) -> torch.Tensor:
    torch.manual_seed(2)
    x = torch.randn(batch, width, height, width_px, device=device).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.fixture(autouse=True)
def _exact_cuda_fp32():
    """TF32 would make fp32 on a GPU only about as exact as bf16."""
    if not CUDA:
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET') == '1'


@pytest.fixture(scope='module')
def triton_device() -> str:
    """'cuda', or 'cpu' in a process running Triton's interpreter; else skip (see
    :func:`test_triton_in_interpreter`)."""
    pytest.importorskip('triton')
    if CUDA:
        return 'cuda'
    if not _interpreting():
        pytest.skip('without a GPU, test_triton_in_interpreter runs this in a TRITON_INTERPRET=1 '
                    'process')
    from mmpyconv.ops.impls import triton
    module = triton.load_kernels()
    assert module is not None and module.INTERPRET
    return 'cpu'


def test_triton_in_interpreter():
    """Without a GPU, run the Triton tests in a process that starts with TRITON_INTERPRET=1.

    Triton decides when ``triton.language`` is first imported (``torch._dynamo`` imports it)
    whether its own functions are interpreted, so the variable must be set before that.
    """
    pytest.importorskip('triton')
    if CUDA or _interpreting():
        pytest.skip('the Triton tests run in this process')
    env = dict(os.environ, TRITON_INTERPRET='1')
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', __file__, '-q', '-p', 'no:cacheprovider', '-k',
         'triton and not in_interpreter and not without_triton'],
        env=env, capture_output=True, text=True, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ''
    assert result.returncode == 0 and 'skipped' not in summary, result.stdout[-4000:]
    assert ' passed' in summary, result.stdout[-4000:]


# ---- masked dense form: every stage plan, every geometry ------------------------------------


@pytest.mark.parametrize('stride,dilation,height,width', GEOMETRIES)
@pytest.mark.parametrize('name,channels,kernels,groups', STAGE_PLANS,
                         ids=[p[0] for p in STAGE_PLANS])
def test_dense_matches_reference(name, channels, kernels, groups, stride, dilation, height,
                                 width):
    module = _make(channels, kernels, groups, stride, dilation, bias=stride == 2)
    x = _input(2, channels, height, width, channels_last=dilation == 2)
    _check_against_reference(module, 'dense', x, tol=1e-5)


def test_dense_bf16_matches_reference():
    module = _make(64, (3, 5, 7, 9), (1, 4, 8, 16), stride=2, bias=True).bfloat16()
    x = _input(2, 64, 13, 17, channels_last=True, dtype=torch.bfloat16)
    _check_against_reference(module, 'dense', x, tol=3e-2)


def test_dense_weight_is_the_masked_pyramid():
    """Zero outside each level's centred k x k window and off its group diagonal."""
    from mmpyconv.ops.impls.dense import dense_weight
    module = _make(8, (3, 5), (1, 4), out_width=[4, 8])
    weight = dense_weight(module.plan, [lvl.weight for lvl in module.levels])
    assert weight.shape == (12, 8, 5, 5)
    level0, level1 = weight[:4], weight[4:]
    assert torch.equal(level0[:, :, 1:4, 1:4], module.levels[0].weight)
    assert not level0[:, :, [0, 4]].any() and not level0[:, :, :, [0, 4]].any()
    for j in range(4):  # output group j (2 channels) reads input group j (2 channels) only
        block = level1[2 * j:2 * j + 2]
        assert torch.equal(block[:, 2 * j:2 * j + 2], module.levels[1].weight[2 * j:2 * j + 2])
        off_diagonal = torch.cat([block[:, :2 * j], block[:, 2 * j + 2:]], dim=1)
        assert not off_diagonal.any()


# ---- nested groups: every stage plan, every geometry, both layouts ----------------------------


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
@pytest.mark.parametrize('stride,dilation,height,width', GEOMETRIES)
@pytest.mark.parametrize('name,channels,kernels,groups', STAGE_PLANS,
                         ids=[p[0] for p in STAGE_PLANS])
def test_nested_matches_reference(name, channels, kernels, groups, stride, dilation, height,
                                  width, channels_last):
    """Output, input grad and every level's weight and bias grad (bias at stride 1 and 2)."""
    module = _make(channels, kernels, groups, stride, dilation, bias=dilation == 1)
    x = _input(2, channels, height, width, channels_last=channels_last)
    _check_against_reference(module, 'nested', x, tol=1e-5)
    with torch.no_grad():
        out = module(x)
    assert out.is_contiguous() != channels_last  # the caller's layout back


def test_nested_bf16_matches_reference():
    for kernels, groups, width in [((3, 5, 7, 9), (1, 4, 8, 16), 64),
                                   ((3, 5, 7), (32, 64, 64), 256)]:
        module = _make(width, kernels, groups, stride=2, bias=True).bfloat16()
        x = _input(2, width, 13, 17, channels_last=True, dtype=torch.bfloat16)
        _check_against_reference(module, 'nested', x, tol=3e-2)


# ---- per level with depthwise rewrites: every stage plan, every geometry, both layouts --------


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
@pytest.mark.parametrize('stride,dilation,height,width', GEOMETRIES)
@pytest.mark.parametrize('name,channels,kernels,groups', STAGE_PLANS,
                         ids=[p[0] for p in STAGE_PLANS])
def test_depthwise_matches_reference(name, channels, kernels, groups, stride, dilation, height,
                                     width, channels_last):
    module = _make(channels, kernels, groups, stride, dilation, bias=stride == 2)
    x = _input(2, channels, height, width, channels_last=channels_last)
    _check_against_reference(module, 'depthwise', x, tol=1e-5)
    with torch.no_grad():
        out = module(x)
    # The CPU path computes in channels_last inside; the caller gets its own layout back.
    assert out.is_contiguous() != channels_last


def test_depthwise_bf16_and_one_grouped_level():
    module = _make(64, (3, 5, 7, 9), (1, 4, 8, 16), stride=2, bias=True).bfloat16()
    x = _input(2, 64, 13, 17, channels_last=True, dtype=torch.bfloat16)
    _check_against_reference(module, 'depthwise', x, tol=3e-2)
    # One level, one output per group (depthwise rewrite) and one with two (grouped conv).
    for out_width in (8, 16):
        module = _make(32, (5, ), (8, ), bias=True, out_width=out_width)
        _check_against_reference(module, 'depthwise', _input(1, 32, 7, 6), tol=1e-5)


def test_depthwise_rewrites_one_output_per_group_levels(monkeypatch):
    """Which levels become depthwise convs, and that those convs really are depthwise."""
    from mmpyconv.ops.impls import depthwise
    from mmpyconv.ops.impls.depthwise import depthwise_levels
    plans = {name: _plan(kernels, groups, channels)
             for name, channels, kernels, groups in STAGE_PLANS}
    assert depthwise_levels(plans['resnet-stage1']) == (False, False, False, True)
    assert depthwise_levels(plans['resnet-stage2']) == (False, False, False)
    assert depthwise_levels(plans['hg-stage1']) == (True, True, True, True)
    assert depthwise_levels(plans['hg-stage2']) == (False, True, False)
    # A level with one input channel per group is depthwise already: left as it is.
    assert depthwise_levels(_plan((3, ), (16, ), 16)) == (False, )

    calls = []
    conv2d = torch.nn.functional.conv2d

    def spy(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        calls.append((x.shape[1], tuple(weight.shape), groups,
                      x.is_contiguous(memory_format=torch.channels_last)))
        return conv2d(x, weight, bias, stride, padding, dilation, groups)

    monkeypatch.setattr(depthwise.F, 'conv2d', spy)
    module = _make(64, (3, 5, 7, 9), (1, 4, 8, 16))
    module.impl = 'depthwise'
    with torch.no_grad():
        module(_input(1, 64, 6, 6))
    assert [c[:3] for c in calls] == [(64, (16, 64, 3, 3), 1), (64, (16, 16, 5, 5), 4),
                                      (64, (16, 8, 7, 7), 8), (64, (64, 1, 9, 9), 64)]
    assert all(c[3] for c in calls), 'narrow groups on the CPU should run in channels_last'


def test_depthwise_layout_rule_on_the_cpu(monkeypatch):
    """Which NCHW layers the CPU path computes in channels_last (timings in the module doc)."""
    from mmpyconv.ops.impls import depthwise
    conv2d = torch.nn.functional.conv2d
    layouts = []

    def spy(x, *args, **kwargs):
        layouts.append(x.is_contiguous(memory_format=torch.channels_last))
        return conv2d(x, *args, **kwargs)

    monkeypatch.setattr(depthwise.F, 'conv2d', spy)

    def channels_last_inside(width, kernels, groups):
        layouts.clear()
        module = _make(width, kernels, groups)
        module.impl = 'depthwise'
        out = module(_input(1, width, 3, 3))
        assert out.is_contiguous()  # NCHW in, NCHW out
        assert len(set(layouts)) == 1
        return layouts[0]

    # PyConvResNet's stage 1 and 2 (16 and 8 channels per group), PyConvHGResNet's stage 1
    # (4 per group, all levels depthwise) and 3 (16 and 8 per group): NHWC inside.
    assert channels_last_inside(64, (3, 5, 7, 9), (1, 4, 8, 16))
    assert channels_last_inside(128, (3, 5, 7), (1, 4, 8))
    assert channels_last_inside(128, (3, 5, 7, 9), (32, ) * 4)
    assert channels_last_inside(512, (3, 5), (32, 64))
    # PyConvResNet's stage 3 (64 per group), PyConvHGResNet's stage 4 (32 per group): NCHW.
    assert not channels_last_inside(256, (3, 5), (1, 4))
    assert not channels_last_inside(1024, (3, ), (32, ))


# ---- fused Triton kernels --------------------------------------------------------------------

# (plan name, width, out width, kernels, groups, stride, dilation, bias, batch, H, W,
#  channels_last): every PyConvResNet stage plan plus HG's groups 32/64, at sizes the
# interpreter runs in seconds; together they cover stride 2, dilation 2, odd sizes,
# channels_last, bias and a width change.
TRITON_CASES = [
    ('small-stride2-odd-bias', 16, 32, (3, 5, 7), (1, 4, 8), 2, 1, True, 2, 13, 17, False),
    ('small-dilation2-cl', 16, 16, (3, 5), (1, 4), 1, 2, False, 1, 9, 11, True),
    ('one-level-grouped', 32, 32, (3, ), (4, ), 1, 1, True, 1, 6, 7, False),
    ('resnet-stage1-cl', 64, 64, (3, 5, 7, 9), (1, 4, 8, 16), 1, 1, False, 1, 5, 6, True),
    ('resnet-stage2-s2d2', 128, 128, (3, 5, 7), (1, 4, 8), 2, 2, False, 1, 7, 5, False),
    ('resnet-stage3', 256, 256, (3, 5), (1, 4), 1, 1, False, 1, 3, 4, True),
    ('hg-stage2', 256, 256, (3, 5, 7), (32, 64, 64), 1, 1, False, 1, 3, 3, True),
]


@pytest.mark.parametrize('case', TRITON_CASES, ids=[c[0] for c in TRITON_CASES])
def test_triton_matches_reference(triton_device, case):
    (_, width, out_width, kernels, groups, stride, dilation, bias, batch, height, width_px,
     channels_last) = case
    module = _make(width, kernels, groups, stride, dilation, bias, out_width, triton_device)
    x = _input(batch, width, height, width_px, channels_last, triton_device)
    _check_against_reference(module, 'triton', x, tol=1e-5)


def test_triton_bf16_matches_reference(triton_device):
    module = _make(16, (3, 5, 7, 9), (1, 2, 4, 4), bias=True, device=triton_device).bfloat16()
    x = _input(1, 16, 7, 9, channels_last=True, device=triton_device, dtype=torch.bfloat16)
    _check_against_reference(module, 'triton', x, tol=3e-2)


def test_triton_writes_every_element(triton_device, monkeypatch):
    """Outputs and input gradients come from the kernels, not from what the buffer held."""
    from mmpyconv.ops.impls import triton_kernels
    monkeypatch.setattr(triton_kernels, '_alloc', lambda shape, like: torch.full(
        tuple(shape), float('nan'), dtype=like.dtype, device=like.device))
    module = _make(16, (3, 5), (1, 4), stride=2, device=triton_device)
    x = _input(1, 16, 9, 7, device=triton_device)
    _check_against_reference(module, 'triton', x, tol=1e-5)


@pytest.mark.parametrize('impl', list(dispatch.IMPLS))
def test_autocast_bf16(impl, request):
    """Under autocast every implementation computes in bf16, as a conv does."""
    device = request.getfixturevalue('triton_device') if impl == 'triton' else 'cpu'
    module = _make(16, (3, 5), (1, 4), bias=True, device=device)
    x = _input(1, 16, 6, 5, device=device)
    with torch.no_grad():
        expected = module(x)
        module.impl = impl
        with torch.autocast(device, dtype=torch.bfloat16):
            out = module(x)
    assert out.dtype == torch.bfloat16
    assert _rel_err(out, expected) <= 3e-2


# ---- choosing an implementation --------------------------------------------------------------


def test_impl_must_be_known():
    choices = ', '.join(repr(name) for name in dispatch.IMPL_NAMES)
    with pytest.raises(ValueError, match=r"impl='fast'.*" + choices):
        PyConv2d(16, 16, (3, 5), groups=(1, 4), impl='fast')
    with pytest.raises(ValueError, match='not a PyConv implementation'):
        dispatch.set_default_impl('fast')
    module = PyConv2d(16, 16, (3, 5), groups=(1, 4))
    module.impl = 'fast'
    with pytest.raises(ValueError, match='not a PyConv implementation'):
        module(torch.rand(1, 16, 4, 4))


class _FakeInput:
    """What the rule reads from an input: device type and dtype (no GPU needed)."""

    def __init__(self, device: str, dtype=torch.float32):
        self.device = torch.device(device)
        self.dtype = dtype


def _plan(kernels, groups, width=64):
    return PyConvPlan.create(width, width, kernels, groups)


@pytest.fixture
def no_auto_table(monkeypatch):
    """'auto' without measurements: the FLOP rule on CUDA, whatever table is installed."""
    monkeypatch.setattr(dispatch, '_auto_table', {'schema': dispatch.AUTO_TABLE_SCHEMA,
                                                  'tables': []})


def test_auto_rule(no_auto_table):
    stage1 = _plan((3, 5, 7, 9), (1, 4, 8, 16))
    assert dispatch.choose_impl(stage1, _FakeInput('cpu')) == 'depthwise'
    assert dispatch.choose_impl(stage1, _FakeInput('cpu', torch.bfloat16)) == 'depthwise'
    assert dispatch.choose_impl(stage1, _FakeInput('cpu', torch.float64)) == 'reference'
    # One plain conv stays one conv; one grouped level still gains channels_last on the CPU.
    assert dispatch.choose_impl(_plan((3, ), (1, )), _FakeInput('cpu')) == 'reference'
    assert dispatch.choose_impl(_plan((3, ), (32, )), _FakeInput('cpu')) == 'depthwise'
    assert dispatch.choose_impl(_plan((3, ), (32, )), _FakeInput('cuda')) == 'reference'
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert dispatch.choose_impl(stage1, _FakeInput('cuda', dtype)) == 'dense'
    assert dispatch.choose_impl(stage1, _FakeInput('cuda', torch.float64)) == 'reference'
    assert dispatch.choose_impl(_plan((3, ), (1, )), _FakeInput('cuda')) == 'reference'
    # PyConvResNet's plans stay dense, PyConvHGResNet's (groups 32/64) per level.
    for kernels, groups in zip(PyConvResNet.default_pyconv_kernels[:3],
                               PyConvResNet.default_pyconv_groups[:3]):
        ratio = _plan(kernels, groups, 256).dense_flop_ratio()
        assert ratio <= dispatch.AUTO_DENSE_MAX_FLOP_RATIO
        assert dispatch.choose_impl(_plan(kernels, groups, 256), _FakeInput('cuda')) == 'dense'
    for kernels, groups in zip(PyConvHGResNet.default_pyconv_kernels[:3],
                               PyConvHGResNet.default_pyconv_groups[:3]):
        assert dispatch.choose_impl(_plan(kernels, groups, 512), _FakeInput('cuda')) == 'reference'
    assert stage1.dense_flop_ratio() == pytest.approx(64 * 64 * 81 / (16 * (
        64 * 9 + 16 * 25 + 8 * 49 + 4 * 81)))


class _FakeCudaInput(_FakeInput):
    """A CPU tensor that says it is on CUDA: what the rule reads, layout included."""

    def __init__(self, tensor: torch.Tensor):
        super().__init__('cuda', tensor.dtype)
        self.tensor = tensor

    def dim(self):
        return self.tensor.dim()

    def is_contiguous(self, memory_format=torch.contiguous_format):
        return self.tensor.is_contiguous(memory_format=memory_format)


def test_auto_table_key_and_lookup():
    """The pure lookup: by device name, then layer shape, dtype and layout."""
    stage1 = _plan((3, 5, 7, 9), (1, 4, 8, 16))
    key = dispatch.table_key(stage1, torch.bfloat16, 'channels_last')
    assert key == 'c64 k3,5,7,9 g1,4,8,16 o16,16,16,16 s1,1 d1,1 bf16 channels_last'
    strided = PyConvPlan.create(64, 128, (3, 5), (1, 4), stride=2, dilation=(1, 2))
    assert dispatch.table_key(strided, torch.float32, 'contiguous') == (
        'c64 k3,5 g1,4 o64,64 s2,2 d1,2 fp32 contiguous')
    plan3d = PyConvPlan.create(16, 16, (3, 5), (1, 4), temporal_kernel_size=(1, 3))
    assert dispatch.table_key(plan3d, torch.float16, 'contiguous').startswith('c16 k1.3,3.5 ')

    fp32_key = dispatch.table_key(stage1, torch.float32, 'contiguous')
    table = {'schema': 1, 'tables': [
        {'device': 'GPU A', 'torch': '2.0.0', 'entries': {key: 'dense', fp32_key: 'reference'}},
        {'device': 'GPU A', 'torch': '2.9.0', 'entries': {key: 'nested'}},
        {'device': 'GPU B', 'torch': '2.0.0', 'entries': {key: 'warp-speed'}},
    ]}
    lookup = dispatch.measured_impl
    assert lookup(table, 'GPU A', key, torch_version='2.0.0') == 'dense'  # same torch first
    assert lookup(table, 'GPU A', key, torch_version='2.5.0') == 'nested'  # else the last
    assert lookup(table, 'GPU A', fp32_key, torch_version='2.9.0') == 'reference'
    assert lookup(table, 'GPU A', dispatch.table_key(stage1, torch.float16, 'contiguous')) is None
    assert lookup(table, 'GPU B', key) is None  # not an implementation of this version
    assert lookup(table, 'GPU C', key) is None and lookup(table, None, key) is None
    assert lookup({'schema': 1, 'tables': []}, 'GPU A', key) is None


def test_auto_reads_the_table_on_cuda(tmp_path, monkeypatch):
    """A table written by the test, read through MMPYCONV_AUTO_TABLE; the device name is the
    rule's own lookup function, replaced (torch.cuda is left alone)."""
    stage1 = _plan((3, 5, 7, 9), (1, 4, 8, 16))
    stage2 = _plan((3, 5, 7), (1, 4, 8), 128)
    entries = {dispatch.table_key(stage1, torch.bfloat16, 'channels_last'): 'nested',
               dispatch.table_key(stage1, torch.float32, 'contiguous'): 'depthwise',
               dispatch.table_key(stage2, torch.float32, 'contiguous'): 'reference'}
    path = tmp_path / 'table.json'
    path.write_text(json.dumps({'schema': dispatch.AUTO_TABLE_SCHEMA, 'tables': [
        {'device': 'Fake GPU', 'torch': torch.__version__, 'entries': entries}]}))
    monkeypatch.setenv(dispatch.AUTO_TABLE_ENV, str(path))
    monkeypatch.setattr(dispatch, '_auto_table', None)
    monkeypatch.setattr(dispatch, 'cuda_device_name', lambda device: 'Fake GPU')

    nhwc = _FakeCudaInput(_input(1, 64, 4, 4, channels_last=True, dtype=torch.bfloat16))
    nchw = _FakeCudaInput(_input(1, 64, 4, 4))
    assert dispatch.choose_impl(stage1, nhwc) == 'nested'
    assert dispatch.choose_impl(stage1, nchw) == 'depthwise'
    assert dispatch.choose_impl(stage2, _FakeCudaInput(_input(1, 128, 4, 4))) == 'reference'
    # not in the table: the FLOP rule
    assert dispatch.choose_impl(stage2, _FakeCudaInput(
        _input(1, 128, 4, 4, channels_last=True))) == 'dense'
    assert dispatch.choose_impl(_plan((3, 5), (32, 64), 512), _FakeCudaInput(
        _input(1, 512, 2, 2))) == 'reference'
    # another GPU: the FLOP rule
    monkeypatch.setattr(dispatch, 'cuda_device_name', lambda device: 'Other GPU')
    assert dispatch.choose_impl(stage1, nhwc) == 'dense'
    # the CPU never reads the table
    monkeypatch.setattr(dispatch, 'cuda_device_name', lambda device: 'Fake GPU')
    assert dispatch.choose_impl(stage1, _FakeInput('cpu', torch.bfloat16)) == 'depthwise'


def test_auto_table_compute_dtype_and_unusable_file(tmp_path, monkeypatch):
    x = torch.rand(1, 2, 3, 3)
    assert dispatch._compute_dtype(x) == torch.float32
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert dispatch._compute_dtype(x) == torch.bfloat16  # the table is keyed by what runs
    for text in ('{"schema": 99, "tables": []}', 'not json', '[]'):
        path = tmp_path / 'bad.json'
        path.write_text(text)
        monkeypatch.setenv(dispatch.AUTO_TABLE_ENV, str(path))
        monkeypatch.setattr(dispatch, '_auto_table', None)
        with pytest.warns(UserWarning, match='gpu_check.py --write-table'):
            assert dispatch.auto_table()['tables'] == []


def test_shipped_auto_table():
    """The package ships the table's schema and no measurement (none has been made), and
    declares it as package data so that wheels carry it."""
    with open(dispatch.AUTO_TABLE_PATH) as f:
        table = json.load(f)
    assert table['schema'] == dispatch.AUTO_TABLE_SCHEMA and table['tables'] == []
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, 'setup.py')) as f:
        assert "package_data={'mmpyconv.ops': ['auto_table.json']}" in f.read()
    with open(os.path.join(root, 'MANIFEST.in')) as f:
        assert 'include mmpyconv/ops/auto_table.json' in f.read().splitlines()


def test_auto_exports_the_reference(monkeypatch):
    """ONNX export and TorchScript tracing get the plain per-level graph from 'auto'."""
    stage1 = _plan((3, 5, 7, 9), (1, 4, 8, 16))
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    assert dispatch.choose_impl(stage1, _FakeInput('cpu')) == 'reference'
    assert dispatch.choose_impl(stage1, _FakeInput('cuda')) == 'reference'
    monkeypatch.undo()

    module = _make(16, (3, 5), (1, 16), out_width=[8, 16])  # level 1: one output per group
    traced = torch.jit.trace(module, _input(1, 16, 6, 6))
    kinds = [node.kind() for node in traced.inlined_graph.nodes()]
    assert kinds.count('aten::_convolution') == 2 and 'aten::cat' in kinds, kinds
    assert 'aten::sum' not in kinds  # no depthwise rewrite of the 16-group level
    x = _input(2, 16, 7, 5)
    module.impl = 'reference'
    with torch.no_grad():
        assert _rel_err(traced(x), module(x)) <= 1e-6


def test_default_impl_precedence(monkeypatch):
    calls = []
    monkeypatch.setattr('mmpyconv.ops.impls.dense.compute',
                        lambda *args: calls.append('dense') or torch.zeros(1))
    auto = PyConv2d(16, 16, (3, 5), groups=(1, 4))
    pinned = PyConv2d(16, 16, (3, 5), groups=(1, 4), impl='reference')
    x = torch.rand(1, 16, 4, 4)
    assert dispatch.get_default_impl() == 'auto'
    with dispatch.pyconv_impl('dense'):
        assert dispatch.get_default_impl() == 'dense'
        auto(x)
        assert calls == ['dense']
        assert pinned(x).shape == (1, 16, 4, 4)  # a layer's own choice wins
        assert calls == ['dense']
    assert dispatch.get_default_impl() == 'auto'
    with pytest.raises(KeyError):
        with dispatch.pyconv_impl('reference'):
            raise KeyError
    assert dispatch.get_default_impl() == 'auto'
    auto(x)
    assert calls == ['dense']  # auto on the CPU: depthwise


def test_triton_error_off_gpu(triton_device, monkeypatch):
    if CUDA:
        pytest.skip('the kernels run on this machine')
    from mmpyconv.ops.impls import triton_kernels
    monkeypatch.setattr(triton_kernels, 'INTERPRET', False)
    module = PyConv2d(16, 16, (3, 5), groups=(1, 4), impl='triton')
    with pytest.raises(RuntimeError, match=r'impl="triton".*CUDA tensors.*TRITON_INTERPRET=1'):
        module(torch.rand(1, 16, 4, 4))


def test_import_without_triton_and_env_default():
    """mmpyconv imports without Triton; impl='triton' then says so; the env var sets 'auto'."""
    script = textwrap.dedent('''
        import sys
        import torch
        assert 'triton' not in sys.modules
        sys.modules['triton'] = None  # `import triton` now fails as if it were not installed
        from mmpyconv.ops import PyConv2d, dispatch
        assert dispatch.get_default_impl() == 'dense'
        m = PyConv2d(8, 8, (3, 5), groups=(1, 4))
        x = torch.rand(1, 8, 5, 5)
        ref = torch.cat([lvl(x) for lvl in m.levels], 1)
        assert torch.allclose(m(x), ref, atol=1e-5)
        m.impl = 'triton'
        try:
            m(x)
        except RuntimeError as e:
            assert 'Triton cannot be imported' in str(e), e
        else:
            raise AssertionError('impl=triton ran without triton')
        print('ok')
    ''')
    env = dict(os.environ, MMPYCONV_PYCONV_IMPL='dense')
    env.pop('TRITON_INTERPRET', None)
    result = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr


# ---- one module, one set of parameters -------------------------------------------------------


def test_config_sets_impl_and_checkpoints_interchange():
    layer = build_conv_layer(dict(type='PyConv2d', impl='dense'), 16, 16,
                             kernel_size=(3, 5), groups=(1, 4))
    assert isinstance(layer, PyConv2d) and layer.impl == 'dense'
    assert "impl='dense'" in repr(layer)

    def backbone(impl):
        torch.manual_seed(0)
        return PyConvResNet(depth=18, num_stages=2, strides=(2, 2), dilations=(1, 1),
                            out_indices=(0, 1), pyconv_cfg=dict(type='PyConv2d', impl=impl)).eval()

    reference, dense = backbone('reference'), backbone('dense')
    assert list(reference.state_dict()) == list(dense.state_dict())
    assert 'layer1.0.conv1.levels.3.weight' in dense.state_dict()
    torch.manual_seed(5)
    dense.load_state_dict(reference.state_dict())
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        for a, b in zip(dense(x), reference(x)):
            assert _rel_err(a, b) <= 1e-5


# ---- torch.compile ---------------------------------------------------------------------------


@pytest.mark.parametrize('impl', ['reference', 'dense', 'depthwise', 'nested'])
def test_compile_without_graph_breaks(impl):
    import torch._dynamo
    torch._dynamo.reset()
    module = PyConv2d(16, 32, (3, 5, 7), groups=(1, 4, 8), stride=2, impl=impl)
    x = torch.rand(2, 16, 9, 9)
    explanation = torch._dynamo.explain(module)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1

    torch.manual_seed(0)
    model = PyConvResNet(depth=18, num_stages=2, strides=(2, 2), dilations=(1, 1),
                         out_indices=(1, ), pyconv_cfg=dict(type='PyConv2d', impl=impl))
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    x = torch.rand(2, 3, 32, 32)
    out = compiled(x)[0]
    out.sum().backward()
    grad = model.layer1[0].conv1.levels[3].weight.grad.clone()
    model.zero_grad()
    eager = model(x)[0]
    eager.sum().backward()
    assert _rel_err(out, eager) <= 1e-5
    assert _rel_err(grad, model.layer1[0].conv1.levels[3].weight.grad) <= 1e-4


def test_compile_triton_custom_op(triton_device):
    """The fused kernels are opaque custom ops to dynamo: one graph, gradients intact."""
    import torch._dynamo
    torch._dynamo.reset()
    module = _make(16, (3, 5), (1, 4), device=triton_device)
    module.impl = 'triton'
    x = _input(1, 16, 5, 5, device=triton_device).requires_grad_()
    compiled = torch.compile(module, backend='aot_eager', fullgraph=True)
    out = compiled(x)
    out.square().sum().backward()
    module.impl = 'reference'
    ref_x = x.detach().clone().requires_grad_()
    ref = module(ref_x)
    assert _rel_err(out, ref) <= 1e-5
    ref.square().sum().backward()
    assert _rel_err(x.grad, ref_x.grad) <= 1e-5
