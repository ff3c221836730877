"""tools/analysis/gpu_check.py without a GPU: its refusal, its logic on tiny sizes (--device cpu
--quick), a parity failure's exit status, the Triton num_warps check and the auto table merge."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mmpyconv.ops import dispatch

from tool_harness import ROOT, load_tool

TOOL = os.path.join(ROOT, 'tools', 'analysis', 'gpu_check.py')
gpu_check = load_tool('analysis/gpu_check.py')


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_refuses_without_cuda():
    result = _run()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'no CUDA device' in lines[0], result.stderr
    assert '--device cpu --quick' in lines[0]
    result = _run('--device', 'cpu')
    assert result.returncode == 2 and 'only with --quick' in result.stderr


def test_quick_cpu_run(tmp_path):
    table_path = tmp_path / 'table' / 'auto_table.json'
    result = _run('--device', 'cpu', '--quick', '--img-size', '16', '--impls', 'reference',
                  'dense', 'nested', '--out-dir', str(tmp_path), '--write-table', str(table_path))
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    text = (tmp_path / 'gpu_check.md').read_text()
    assert text in result.stdout

    # parity: every PyConvResNet-18 layer shape (stride 1 and 2) and each plan at dilation 2,
    # both layouts, fp32 and bf16 for dense and nested, bf16 for the reference
    parity = report['parity']
    assert parity['failures'] == [] and report['triton_num_warps'] == []
    results = parity['results']
    assert {(r['impl'], r['dtype']) for r in results} == {
        ('reference', 'bf16'), ('dense', 'fp32'), ('dense', 'bf16'), ('nested', 'fp32'),
        ('nested', 'bf16')}
    assert {r['layout'] for r in results} == {'contiguous', 'channels_last'}
    keys = {r['key'] for r in results}
    assert any(' s2,2 ' in k for k in keys) and any(' d2,2 ' in k for k in keys)
    assert any('k3,5,7,9 g1,4,8,16' in k for k in keys)
    assert any(r['bias'] for r in results)
    assert parity['checks'] == len(results) == 5 * 2 * len(gpu_check.parity_plans(
        gpu_check.parse_args(['--device', 'cpu', '--quick', '--img-size', '16']), 'cpu'))
    assert max(r['error'] for r in results if r['dtype'] == 'fp32') <= 1e-4

    # per layer: three times for each implementation and the 3x3 conv, in both settings
    layers = report['layers']
    assert {(r['impl'], r['setting']) for r in layers} == {
        (impl, setting) for impl in ('reference', 'dense', 'nested', 'conv3x3')
        for setting in ('bf16-nhwc', 'fp32-nchw')}
    for row in layers:
        assert min(row['forward'], row['input_grad'], row['weight_grad']) > 0, row
    assert all(r['parity_ok'] for r in layers if r['impl'] != 'conv3x3')

    # networks: ResNet-18 the baseline, PyConvResNet-18 under each implementation and auto
    nets = report['networks']
    assert {(r['model'], r['impl']) for r in nets} == {('resnet18', '-')} | {
        ('pyconvresnet18', impl) for impl in ('reference', 'dense', 'nested', 'auto')}
    assert len(nets) == 5 * 2 * 2 and all(r['img_per_s'] > 0 for r in nets)
    assert all(r['vs_baseline'] == 1.0 for r in nets if r['model'] == 'resnet18')
    assert '### Networks: images/s and ratio to resnet18' in text
    assert '| pyconvresnet18 | nested |' in text and '### Layers' in text

    # the auto table: one entry per layer shape and setting, read back by the lookup
    table = json.loads(table_path.read_text())
    assert table['schema'] == dispatch.AUTO_TABLE_SCHEMA and len(table['tables']) == 1
    measured = table['tables'][0]
    assert measured['device'] == report['environment']['device']
    assert set(measured['entries']) == {r['key'] for r in layers}
    for key, impl in measured['entries'].items():
        assert impl in ('reference', 'dense', 'nested')
        assert measured['times_ms'][key][impl] == min(measured['times_ms'][key].values())
        assert dispatch.measured_impl(table, measured['device'], key) == impl


def test_parity_failure_exits_1(tmp_path):
    """An implementation 1% off the reference: reported, and the exit status says so."""
    script = textwrap.dedent(f'''
        import runpy, sys, types
        from mmpyconv.ops import dispatch
        from mmpyconv.ops.impls import reference
        dispatch.IMPLS['nested'] = types.SimpleNamespace(
            unavailable=reference.unavailable,
            compute=lambda x, plan, w, b=None: reference.compute(x, plan, w, b) * 1.01)
        sys.argv = [{TOOL!r}, '--device', 'cpu', '--quick', '--img-size', '16', '--impls',
                    'reference', 'nested', '--models', '--layer-models', '--out-dir',
                    {str(tmp_path)!r}]
        runpy.run_path({TOOL!r}, run_name='__main__')
    ''')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    failures = report['parity']['failures']
    assert failures and {r['impl'] for r in failures} == {'nested'}
    assert 'FAILED: nested' in (tmp_path / 'gpu_check.md').read_text()
    assert report['layers'] == [] and report['networks'] == []


def test_triton_num_warps_check():
    """The shipped kernels launch with num_warps <= 7 (pytorch/pytorch#173068); the check finds
    a constant, a launch keyword or a triton.Config above it, and a value it cannot read."""
    with open(gpu_check.TRITON_KERNELS) as f:
        assert gpu_check.num_warps_problems(f.read()) == []
    check = gpu_check.num_warps_problems
    assert check('_NUM_WARPS = 4\nk[g](x, num_warps=_NUM_WARPS)\n') == []
    assert check('_NUM_WARPS = 8\nk[g](x, num_warps=_NUM_WARPS)\n') == [
        'line 1: _NUM_WARPS = 8', 'line 2: num_warps=8']
    assert check('c = triton.Config({}, num_warps=16)\n') == ['line 1: num_warps=16']
    assert check('c = triton.Config({}, num_warps=4)\n') == []
    assert 'not a constant' in check('k[g](x, num_warps=pick())\n')[0]


def test_merge_table():
    new = dict(device='GPU A', torch='2.9', entries={'k': 'nested'})
    assert gpu_check.merge_table(None, new) == {'schema': dispatch.AUTO_TABLE_SCHEMA,
                                                'tables': [new]}
    old_same = dict(device='GPU A', torch='2.9', entries={'k': 'dense'})
    old_torch = dict(device='GPU A', torch='2.8', entries={'k': 'dense'})
    other = dict(device='GPU B', torch='2.9', entries={'k': 'reference'})
    existing = {'schema': 1, 'about': 'kept', 'tables': [old_same, old_torch, other]}
    merged = gpu_check.merge_table(existing, new)
    assert merged['about'] == 'kept' and merged['tables'] == [old_torch, other, new]
    assert gpu_check.merge_table({'schema': 0, 'tables': [other]}, new)['tables'] == [new]


def test_table_entries_take_the_fastest_that_passed_parity():
    rows = [dict(key='a', impl='reference', total=3.0, parity_ok=True),
            dict(key='a', impl='dense', total=1.0, parity_ok=False),
            dict(key='a', impl='nested', total=2.0, parity_ok=True),
            dict(key='a', impl='conv3x3', total=0.5, parity_ok=None),
            dict(key='b', impl='depthwise', total=2.0, parity_ok=None),
            dict(key='b', impl='reference', failure='OOM', parity_ok=True)]
    entries, times = gpu_check.table_entries(rows)
    assert entries == {'a': 'nested'} and times == {'a': {'reference': 3.0, 'nested': 2.0}}
