"""tools/analysis/benchmark.py on the CPU, tiny: every table, every row, errors within bounds."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'analysis', 'benchmark.py')


def _rows(text: str, prefix: str):
    return [[cell.strip() for cell in line.strip('|').split('|')]
            for line in text.splitlines() if line.startswith(f'| {prefix}')]


def test_tiny_cpu_run(tmp_path):
    out = tmp_path / 'bench.md'
    args = ['--device', 'cpu', '--threads', '1', '--cpu-clock', 'process', '--img-size', '32',
            '--batch-size', '2', '--iters', '1', '--warmup', '0', '--dtypes', 'fp32',
            '--models', 'resnet50', 'resnet18', 'pyconvresnet18',
            '--layer-models', 'pyconvhgresnet50', 'pyconvresnet18',
            '--impls', 'reference', 'dense', 'depthwise', 'auto', '--rounds', '2',
            '--out', str(out)]
    result = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert text.strip() in result.stdout
    assert 'models: best of 2 round-robin rounds' in text
    assert result.stderr.count('round 2/2 pyconvresnet18 impl=depthwise') == 2  # train, infer

    # Per layer: stages 1-3 of PyConvHGResNet-50 (bottlenecks) and PyConvResNet-18 (basic
    # blocks: the PyConv is their first conv), every implementation plus the 3x3 conv, each
    # with a time; every implementation's output and gradients equal the reference's.
    layers = _rows(text, 'pyconvhgresnet50 stage')
    basic = _rows(text, 'pyconvresnet18 stage')
    assert len(layers) == len(basic) == 3 * 5, text
    assert sorted({c[1] for c in basic}) == ['128x4x4', '256x2x2', '64x8x8']
    for cells in layers + basic:
        layer, shape, ratio, impl, ms, speedup, err = cells
        assert float(ms) > 0, cells
        if impl in ('dense', 'depthwise', 'auto'):
            assert float(err) <= 1e-4, cells
        if impl == 'dense' and cells in layers:  # HG's groups 32/64: most FLOPs wasted dense
            assert float(ratio) > 16, cells
    # 32 px: the 7x7/2 stem gives 16 px and every stage halves it (its first PyConv strided).
    assert sorted({c[1] for c in layers}) == ['128x8x8', '256x4x4', '512x2x2']

    # Per model, training and inference: a rate for every row, ResNet-50 as the baseline.
    for title in ('### Training step', '### Inference'):
        table = text[text.index(title):]
        table = table[:table.find('###', 3)] if '###' in table[3:] else table
        rows = {(c[0], c[1]): c for c in _rows(table, 'resnet') + _rows(table, 'pyconvresnet')}
        assert set(rows) == {('resnet50 (mmpretrain)', '-'), ('resnet18 (mmpretrain)', '-')} | {
            ('pyconvresnet18', impl) for impl in ('reference', 'dense', 'depthwise', 'auto')}
        for cells in rows.values():
            assert float(cells[2].replace(',', '')) > 0, cells
        assert rows[('resnet50 (mmpretrain)', '-')][3] == '1.00x'
