"""The package's shape: dependencies point one way (tools -> runner -> convert -> models ->
ops), no import cycles, small modules, and ``import mmpyconv`` loads no toolbox, no runner."""
import ast
import os
import subprocess
import sys
from typing import Dict, Set

import pytest

ROOT = os.environ.get('MMPYCONV_STRUCTURE_ROOT') or os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'mmpyconv')
MAX_LINES = 600
# What each part of the package may import from the others (itself always).
# utils and compat import nothing of the package: every part may use them.
ALLOWED = {
    'utils': set(),
    'compat': set(),
    'ops': {'utils'},
    'models': {'ops', 'utils', 'compat'},
    'datasets': set(),
    # Training machinery for any toolbox (hooks): imported by `import mmpyconv`.
    'engine': {'ops', 'models', 'utils', 'compat'},
    'convert': {'ops', 'models', 'utils', 'hub'},
    'runner': {'ops', 'models', 'engine', 'convert', 'utils', 'compat', 'hub'},
}


def modules() -> Dict[str, str]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                found[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = path
    return found


def imports(name: str, path: str, known: Set[str]) -> Set[str]:
    """The package's modules that a module imports, at any depth of its code."""
    is_package = path.endswith('__init__.py')
    here = name.split('.') if is_package else name.split('.')[:-1]
    targets = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join(here[:len(here) - node.level + 1] + ([base] if base else []))
            # `from pkg import mod` imports the module; `from mod import name`, the module.
            named = {f'{base}.{alias.name}' for alias in node.names} & known
            targets |= named or {base}
    return {t for t in targets if t in known and t != name}


@pytest.fixture(scope='module')
def graph():
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def part(module: str) -> str:
    return module.split('.')[1] if module.count('.') else ''


def test_dependencies_point_one_way(graph):
    wrong = []
    for module, targets in graph.items():
        allowed = ALLOWED.get(part(module))
        if allowed is None:
            continue
        for target in targets:
            if part(target) not in allowed | {part(module), ''}:
                wrong.append(f'{module} -> {target}')
    assert not wrong, wrong


def test_nothing_imports_the_runner_but_itself(graph):
    assert not [m for m, targets in graph.items() if part(m) != 'runner'
                and any(part(t) == 'runner' for t in targets)]


def test_no_import_cycle(graph):
    edges = graph
    state: Dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_modules_stay_small():
    long = {name: n for name, path in modules().items()
            if (n := sum(1 for _ in open(path))) > MAX_LINES}
    assert not long, long


def test_import_mmpyconv_loads_no_toolbox_and_no_runner():
    code = ('import sys, mmpyconv; '
            'bad = [m for m in sys.modules if m.split(".")[0] in '
            '("mmpretrain", "mmdet", "mmseg", "mmaction") or m.startswith('
            '("mmpyconv.runner", "mmpyconv.convert", "mmpyconv.models.decode_heads"))]; '
            'assert not bad, bad')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
