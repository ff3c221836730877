"""Fused Triton kernels for PyConv: every pyramid level in one launch, output written in place.

Three kernels, each an implicit GEMM over all levels at once:

* forward: a program computes a tile of output pixels x output channels of one level, looping
  over that level's ``k x k`` taps and the input channels its groups read, and stores straight
  into the level's slice of the concatenated output (no per-level tensors, no ``torch.cat``).
  The output-channel tiles of every level vary fastest in the launch grid, so the programs that
  share an input pixel tile run together and read it from L2.
* input gradient: a program computes a tile of input pixels x input channels, summing over every
  level, tap and the output channels of the groups that read those input channels.
* weight gradient: a program computes an output-channel x input-channel tile of one level, for
  each of the level's taps in turn, summing over a slice of the pixels (split-K); torch adds up
  the slices' partial sums.

A tile may cover several groups when groups are narrower than the tile: the weight tile is then
loaded block-diagonally masked (zeros off the group diagonal), so tensor cores get operands at
least 16 wide and the operands are read fewer times, at the cost of multiplying by those zeros
within the tile, never beyond it (the masked dense form multiplies by every zero of the layer).

The kernels take any strides, but read channels as the innermost axis of a tile: they are meant
for channels_last tensors (the layout to train convnets in on GPUs); contiguous NCHW tensors
give the same results, with strided loads.

Level weights are packed on the fly (differentiably) into one buffer, each level laid out as
``(k, k, C_in/g, c)`` so a tile's output channels are contiguous. The kernels are wrapped as
``torch.library`` custom ops with a registered autograd formula and fake (meta) functions, so
``torch.compile`` treats them as opaque ops without graph breaks.

Importing this module needs Triton; :mod:`mmpyconv.ops.impls.triton` imports it lazily.
``TRITON_INTERPRET=1``, set before the import, runs the kernels on CPU tensors through Triton's
interpreter (slow; for tests). The interpreter's ``tl.dot`` mishandles bf16 and fp16 operands
(triton 3.8), so under it the operands are upcast to fp32 before each dot; compiled kernels use
the native 16-bit dot.
"""
import functools
import os
from typing import List, Optional, Sequence

import torch
import triton
import triton.language as tl

from ..plan import PyConvPlan
from .layout import memory_format_of

__all__ = ['INTERPRET', 'pyconv2d_triton']

INTERPRET = os.environ.get('TRITON_INTERPRET') == '1'

_SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_NUM_WARPS = 4
_PARTIAL_NUMEL = 1 << 24


@triton.jit
def _load_tile(tiles_ptr, tile):
    """A work tile's record: (level, first output channel, input span start, input span end)."""
    rec = tiles_ptr + tile * 4
    return tl.load(rec), tl.load(rec + 1), tl.load(rec + 2), tl.load(rec + 3)


@triton.jit
def _load_level(levels_ptr, lvl):
    """A level's record: (kernel, pad h, pad w, out channels, out channels per group, in
    channels per group, first output channel in the concatenation, offset in the weights)."""
    rec = levels_ptr + lvl * 8
    return (tl.load(rec), tl.load(rec + 1), tl.load(rec + 2), tl.load(rec + 3),
            tl.load(rec + 4), tl.load(rec + 5), tl.load(rec + 6), tl.load(rec + 7))


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, b_ptr, out_ptr, levels_ptr, tiles_ptr, M, H, W, OH, OW, sxn, sxc,
                sxh, sxw, son, soc, soh, sow, SH: tl.constexpr, SW: tl.constexpr,
                DH: tl.constexpr, DW: tl.constexpr, HAS_BIAS: tl.constexpr,
                PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    tile = tl.program_id(0)
    pid_m = tl.program_id(1)
    # tile: (level, first output channel within the level, input channel span of its groups)
    lvl, co0, ci_lo, ci_hi = _load_tile(tiles_ptr, tile)
    k, ph, pw, c, cg, cing, co_off, w_off = _load_level(levels_ptr, lvl)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < M
    ow = offs_m % OW
    t = offs_m // OW
    oh = t % OH
    n = (t // OH).to(tl.int64)
    ih0 = oh * SH - ph  # input pixel under tap (0, 0)
    iw0 = ow * SW - pw
    x_pix = x_ptr + n * sxn + ih0 * sxh + iw0 * sxw
    offs_n = co0 + tl.arange(0, BLOCK_N)
    n_ok = offs_n < c
    ci_first = (offs_n // cg) * cing  # first input channel of each output channel's group
    tap_numel = cing * c

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for ci0 in range(ci_lo, ci_hi, BLOCK_K):
        offs_k = ci0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < ci_hi
        ci_loc = offs_k[:, None] - ci_first[None, :]
        w_ok = (ci_loc >= 0) & (ci_loc < cing) & k_ok[:, None] & n_ok[None, :]
        w_blk = w_ptr + w_off + ci_loc * c + offs_n[None, :]
        x_blk = x_pix[:, None] + (offs_k * sxc)[None, :]
        for kh in range(0, k):
            ih = ih0 + kh * DH
            h_ok = m_ok & (ih >= 0) & (ih < H)
            for kw in range(0, k):
                iw = iw0 + kw * DW
                p_ok = h_ok & (iw >= 0) & (iw < W)
                a = tl.load(x_blk + (kh * DH * sxh + kw * DW * sxw),
                            mask=p_ok[:, None] & k_ok[None, :], other=0.0)
                b = tl.load(w_blk + (kh * k + kw) * tap_numel, mask=w_ok, other=0.0)
                if UPCAST:
                    a = a.to(tl.float32)
                    b = b.to(tl.float32)
                acc += tl.dot(a, b, input_precision=PRECISION)
    if HAS_BIAS:
        bias = tl.load(b_ptr + co_off + offs_n, mask=n_ok, other=0.0)
        acc += bias.to(tl.float32)[None, :]
    out = (out_ptr + (n * son + oh * soh + ow * sow)[:, None] + ((co_off + offs_n) * soc)[None, :])
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _tap_source(t, m_ok, size, S: tl.constexpr):
    """The output index ``t / S`` whose tap reads the input, and whether there is one."""
    if S == 1:
        o = t
        ok = m_ok & (t >= 0) & (t < size)
    else:
        t0 = tl.where(t > 0, t, 0)
        o = t0 // S
        ok = m_ok & (t >= 0) & (t0 == o * S) & (o < size)
    return o, ok


@triton.jit
def _bwd_input_kernel(dy_ptr, w_ptr, dx_ptr, levels_ptr, spans_ptr, M, C, H, W, OH, OW,
                      NUM_LEVELS, sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw, SH: tl.constexpr,
                      SW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                      PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_c = tl.program_id(0)
    pid_m = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < M
    iw = offs_m % W
    t = offs_m // W
    ih = t % H
    n = (t // H).to(tl.int64)
    dy_n = dy_ptr + n * sdn
    offs_n = pid_c * BLOCK_N + tl.arange(0, BLOCK_N)  # input channels
    n_ok = offs_n < C

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for lvl in range(0, NUM_LEVELS):
        k, ph, pw, c, cg, cing, co_off, w_off = _load_level(levels_ptr, lvl)
        # output channels of this level that read the tile's input channels
        co_lo = tl.load(spans_ptr + (pid_c * NUM_LEVELS + lvl) * 2)
        co_hi = tl.load(spans_ptr + (pid_c * NUM_LEVELS + lvl) * 2 + 1)
        grp = offs_n // cing
        ci_loc = offs_n - grp * cing
        tap_numel = cing * c
        for co0 in range(co_lo, co_hi, BLOCK_K):
            offs_k = co0 + tl.arange(0, BLOCK_K)
            k_ok = offs_k < co_hi
            w_ok = ((offs_k // cg)[:, None] == grp[None, :]) & k_ok[:, None] & n_ok[None, :]
            w_blk = w_ptr + w_off + (ci_loc * c)[None, :] + offs_k[:, None]
            dy_ch = ((co_off + offs_k) * sdc)[None, :]
            for kh in range(0, k):
                # output row oh reads input row ih through tap kh iff oh * SH = ih + ph - kh * DH
                oh, h_ok = _tap_source(ih + ph - kh * DH, m_ok, OH, SH)
                dy_row = dy_n + oh * sdh
                for kw in range(0, k):
                    ow, p_ok = _tap_source(iw + pw - kw * DW, h_ok, OW, SW)
                    a = tl.load((dy_row + ow * sdw)[:, None] + dy_ch,
                                mask=p_ok[:, None] & k_ok[None, :], other=0.0)
                    b = tl.load(w_blk + (kh * k + kw) * tap_numel, mask=w_ok, other=0.0)
                    if UPCAST:
                        a = a.to(tl.float32)
                        b = b.to(tl.float32)
                    acc += tl.dot(a, b, input_precision=PRECISION)
    dx = dx_ptr + (n * sxn + ih * sxh + iw * sxw)[:, None] + (offs_n * sxc)[None, :]
    tl.store(dx, acc.to(dx_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _bwd_weight_kernel(x_ptr, dy_ptr, part_ptr, levels_ptr, tiles_ptr, M, H, W, OH, OW,
                       PIX_PER_SPLIT, W_TOTAL, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw,
                       SH: tl.constexpr, SW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                       PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_CO: tl.constexpr,
                       BLOCK_CI: tl.constexpr, BLOCK_P: tl.constexpr):
    tile = tl.program_id(0)
    split = tl.program_id(1)
    # tile: (level, first output channel, first input channel, end of the input span)
    lvl, co0, ci0, ci_hi = _load_tile(tiles_ptr, tile)
    k, ph, pw, c, cg, cing, co_off, w_off = _load_level(levels_ptr, lvl)

    offs_co = co0 + tl.arange(0, BLOCK_CO)
    co_ok = offs_co < c
    offs_ci = ci0 + tl.arange(0, BLOCK_CI)
    ci_ok = offs_ci < ci_hi
    ci_loc = offs_ci[None, :] - ((offs_co // cg) * cing)[:, None]
    valid = co_ok[:, None] & ci_ok[None, :] & (ci_loc >= 0) & (ci_loc < cing)
    part = part_ptr + split.to(tl.int64) * W_TOTAL + w_off + ci_loc * c + offs_co[:, None]
    dy_ch = ((co_off + offs_co) * sdc)[:, None]
    x_ch = (offs_ci * sxc)[None, :]
    p_lo = split * PIX_PER_SPLIT
    p_hi = tl.minimum(p_lo + PIX_PER_SPLIT, M)
    for tap in range(0, k * k):
        kh = tap // k
        kw = tap - kh * k
        acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=tl.float32)
        for p0 in range(p_lo, p_hi, BLOCK_P):
            offs_p = p0 + tl.arange(0, BLOCK_P)
            p_ok = offs_p < p_hi
            ow = offs_p % OW
            t = offs_p // OW
            oh = t % OH
            n = (t // OH).to(tl.int64)
            ih = oh * SH + (kh * DH - ph)
            iw = ow * SW + (kw * DW - pw)
            x_ok = p_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            a = tl.load(dy_ptr + (n * sdn + oh * sdh + ow * sdw)[None, :] + dy_ch,
                        mask=co_ok[:, None] & p_ok[None, :], other=0.0)
            b = tl.load(x_ptr + (n * sxn + ih * sxh + iw * sxw)[:, None] + x_ch,
                        mask=x_ok[:, None] & ci_ok[None, :], other=0.0)
            if UPCAST:
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc += tl.dot(a, b, input_precision=PRECISION)
        tl.store(part + tap * cing * c, acc, mask=valid)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _tile_width(channels: int) -> int:
    """Tile width over ``channels`` channels: 16 (the smallest tensor-core operand) to 64.

    A tile may span several groups: it then multiplies by the zeros off the group diagonal,
    but reads its operands fewer times than narrower tiles would. These layers move more bytes
    than tensor cores need time for, so fewer, wider tiles are the better trade.
    """
    return 16 if channels < 32 else 32 if channels < 64 else 64


def _span_width(span: int) -> int:
    """Reduction block over a channel span: the span rounded up to a power of two, 16 to 64."""
    return min(64, max(16, triton.next_power_of_2(span)))


class _LaunchTables:
    """What the kernels read about a plan (level records, work tiles), on one device."""

    def __init__(self, plan: PyConvPlan, device: torch.device):
        # Per level (8 int32, as the kernels read them): kernel, pad_h, pad_w, output channels,
        # output channels per group, input channels per group, offset of the level in the
        # concatenated output, offset of its weight in the packed buffer.
        rows, co_off, w_off = [], 0, 0
        for i, (k, g, c) in enumerate(zip(plan.kernels, plan.groups, plan.level_channels)):
            cg, cing = c // g, plan.in_channels // g
            rows.append((k, *plan.padding(i), c, cg, cing, co_off, w_off))
            co_off += c
            w_off += plan.level_params(i)
        self.weight_numel = w_off
        self.levels = torch.tensor(rows, dtype=torch.int32, device=device)

        # Output-channel tiles of each level, with the input channels their groups read:
        # (level, first output channel within the level, input span start, input span end).
        self.block_co = _tile_width(min(plan.level_channels))
        co_tiles = []
        for lvl, (k, _, _, c, cg, cing, _, _) in enumerate(rows):
            for co0 in range(0, c, self.block_co):
                g_first, g_last = co0 // cg, (min(co0 + self.block_co, c) - 1) // cg
                co_tiles.append((lvl, co0, g_first * cing, (g_last + 1) * cing))
        self.block_ci_span = _span_width(max(hi - lo for _, _, lo, hi in co_tiles))

        # forward: one program per (output-channel tile, pixel block)
        self.fwd_tiles = torch.tensor(co_tiles, dtype=torch.int32, device=device)

        # input gradient: one program per (input-channel block, pixel block), over the output
        # channels of every level that read the block
        self.dx_block_n = _tile_width(plan.in_channels)
        self.dx_blocks = _cdiv(plan.in_channels, self.dx_block_n)
        spans = []
        for b in range(self.dx_blocks):
            ci0 = b * self.dx_block_n
            ci1 = min((b + 1) * self.dx_block_n, plan.in_channels) - 1
            for (k, _, _, c, cg, cing, _, _) in rows:
                spans.append((ci0 // cing * cg, (ci1 // cing + 1) * cg))
        self.dx_block_k = _span_width(max(hi - lo for lo, hi in spans))
        self.dx_spans = torch.tensor(spans, dtype=torch.int32, device=device)

        # weight gradient: one program per (output-channel tile, input block of its span, pixel
        # split), over all taps of the level in turn
        self.dw_block_p = 64
        dw = [(lvl, co0, ci0, ci_hi) for lvl, co0, ci_lo, ci_hi in co_tiles
              for ci0 in range(ci_lo, ci_hi, self.block_ci_span)]
        self.dw_tiles = torch.tensor(dw, dtype=torch.int32, device=device)


@functools.lru_cache(maxsize=256)
def _launch_tables(plan: PyConvPlan, device: torch.device) -> _LaunchTables:
    return _LaunchTables(plan, device)


def _plan_of(x: torch.Tensor, kernels: Sequence[int], groups: Sequence[int],
             level_channels: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int]) -> PyConvPlan:
    """The plan a custom op's arguments describe (custom ops take lists, not a plan)."""
    return PyConvPlan(x.shape[1], tuple(kernels), tuple(groups), tuple(level_channels),
                      tuple(stride), tuple(dilation))


def _alloc(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised result (the kernels write every element) in ``like``'s layout."""
    return torch.empty(shape, dtype=like.dtype, device=like.device,
                       memory_format=memory_format_of(like))


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 follows PyTorch's switch for convolutions, so 'triton' matches 'reference' on GPUs.
    if dtype == torch.float32 and not (torch.backends.cudnn.allow_tf32 and not INTERPRET):
        return 'ieee'
    return 'tf32'


def _common(dtype: torch.dtype) -> dict:
    return dict(PRECISION=_dot_precision(dtype), UPCAST=INTERPRET and dtype != torch.float32,
                num_warps=_NUM_WARPS)


@torch.library.custom_op('mmpyconv::pyconv2d_fwd', mutates_args=())
def _fwd_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
            kernels: List[int], groups: List[int], level_channels: List[int], stride: List[int],
            dilation: List[int]) -> torch.Tensor:
    plan = _plan_of(x, kernels, groups, level_channels, stride, dilation)
    tables = _launch_tables(plan, x.device)
    batch, _, height, width = x.shape
    oh, ow = plan.output_size(height, width)
    out = _alloc((batch, plan.out_channels, oh, ow), x)
    m = batch * oh * ow
    if m == 0:
        return out
    block_m = 64
    grid = (tables.fwd_tiles.shape[0], _cdiv(m, block_m))
    _fwd_kernel[grid](
        x, weight, bias if bias is not None else weight, out, tables.levels, tables.fwd_tiles, m,
        height, width, oh, ow, *x.stride(), *out.stride(), SH=stride[0], SW=stride[1],
        DH=dilation[0], DW=dilation[1], HAS_BIAS=bias is not None, BLOCK_M=block_m,
        BLOCK_N=tables.block_co, BLOCK_K=tables.block_ci_span, **_common(x.dtype))
    return out


@_fwd_op.register_fake
def _fwd_fake(x, weight, bias, kernels, groups, level_channels, stride, dilation):
    plan = _plan_of(x, kernels, groups, level_channels, stride, dilation)
    return torch.empty((x.shape[0], plan.out_channels, *plan.output_size(*x.shape[2:])),
                       dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))


@torch.library.custom_op('mmpyconv::pyconv2d_bwd_input', mutates_args=())
def _bwd_input_op(grad: torch.Tensor, weight: torch.Tensor, x: torch.Tensor, kernels: List[int],
                  groups: List[int], level_channels: List[int], stride: List[int],
                  dilation: List[int]) -> torch.Tensor:
    """The input gradient; ``x`` gives its shape, dtype and memory format only."""
    plan = _plan_of(x, kernels, groups, level_channels, stride, dilation)
    tables = _launch_tables(plan, x.device)
    batch, channels, height, width = x.shape
    dx = _alloc(x.shape, x)
    m = batch * height * width
    if m == 0:
        return dx
    block_m = 64
    grid = (tables.dx_blocks, _cdiv(m, block_m))
    _bwd_input_kernel[grid](
        grad, weight, dx, tables.levels, tables.dx_spans, m, channels, height, width,
        grad.shape[2], grad.shape[3], plan.num_levels, *grad.stride(), *dx.stride(),
        SH=stride[0], SW=stride[1], DH=dilation[0], DW=dilation[1], BLOCK_M=block_m,
        BLOCK_N=tables.dx_block_n, BLOCK_K=tables.dx_block_k, **_common(x.dtype))
    return dx


@_bwd_input_op.register_fake
def _bwd_input_fake(grad, weight, x, kernels, groups, level_channels, stride, dilation):
    return torch.empty_like(x, memory_format=memory_format_of(x))


@torch.library.custom_op('mmpyconv::pyconv2d_bwd_weight', mutates_args=())
def _bwd_weight_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, kernels: List[int],
                   groups: List[int], level_channels: List[int], stride: List[int],
                   dilation: List[int]) -> torch.Tensor:
    """The packed weight's gradient; ``weight`` gives its size and dtype only."""
    tables = _launch_tables(_plan_of(x, kernels, groups, level_channels, stride, dilation),
                            x.device)
    batch, _, height, width = x.shape
    oh, ow = grad.shape[2:]
    m = batch * oh * ow
    tiles = tables.dw_tiles.shape[0]
    # Split the pixel sum so that the launch fills a large GPU (several programs per SM) while
    # each program still sums many pixel blocks and the fp32 partial sums stay under 64 MiB.
    splits = max(1, min(_cdiv(m, 8 * tables.dw_block_p), _cdiv(2048, tiles),
                        _PARTIAL_NUMEL // tables.weight_numel))
    per_split = _cdiv(_cdiv(m, splits), tables.dw_block_p) * tables.dw_block_p
    splits = max(1, _cdiv(m, per_split))
    partial = torch.zeros((splits, tables.weight_numel), dtype=torch.float32, device=x.device)
    if m > 0:
        _bwd_weight_kernel[(tiles, splits)](
            x, grad, partial, tables.levels, tables.dw_tiles, m, height, width, oh, ow,
            per_split, tables.weight_numel, *x.stride(), *grad.stride(), SH=stride[0],
            SW=stride[1], DH=dilation[0], DW=dilation[1], BLOCK_CO=tables.block_co,
            BLOCK_CI=tables.block_ci_span, BLOCK_P=tables.dw_block_p, **_common(x.dtype))
    return partial.sum(0).to(weight.dtype)


@_bwd_weight_op.register_fake
def _bwd_weight_fake(grad, x, weight, kernels, groups, level_channels, stride, dilation):
    return torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    x, weight, bias, *config = inputs
    ctx.save_for_backward(x, weight)
    ctx.config = config
    ctx.bias_dtype = None if bias is None else bias.dtype


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    dx = dw = db = None
    if ctx.needs_input_grad[0]:
        dx = _bwd_input_op(grad, weight, x, *ctx.config)
    if ctx.needs_input_grad[1]:
        dw = _bwd_weight_op(grad, x, weight, *ctx.config)
    if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
        db = grad.sum(dim=(0, 2, 3), dtype=torch.float32).to(ctx.bias_dtype)
    return dx, dw, db, None, None, None, None, None


_fwd_op.register_autograd(_backward, setup_context=_setup_context)


def pack_weights(weights: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The level weights as the kernels read them: each ``(k, k, C_in/g, c)``, concatenated."""
    return torch.cat([w.permute(2, 3, 1, 0).reshape(-1) for w in weights]).to(dtype)


def pyconv2d_triton(x: torch.Tensor, plan: PyConvPlan, weights: Sequence[torch.Tensor],
                    biases: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """All levels of a PyConv through the fused kernels (differentiable in x, weights, biases).

    Under autocast the input and weights are cast to the autocast dtype, as a conv would be.
    """
    plan.check_input(x)
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    if dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f'the Triton PyConv kernels take float16, bfloat16 or float32 inputs, '
                        f'got {dtype}; use impl="reference" for {dtype}')
    bias = None
    if biases is not None:
        bias = torch.cat(list(biases))
    return _fwd_op(x.to(dtype), pack_weights(weights, dtype), bias, list(plan.kernels),
                   list(plan.groups), list(plan.level_channels), list(plan.stride),
                   list(plan.dilation))
