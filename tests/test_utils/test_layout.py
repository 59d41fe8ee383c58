# Copyright (c) SMT-MM contributors. All rights reserved.
"""Package layering: no import cycles inside ``smt_mm`` (function-local
imports included), and ``import smt_mm`` only registers."""
import ast
import os
import os.path as osp
import subprocess
import sys

import pytest
from helpers import REPO

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick

PACKAGE = osp.join(REPO, 'smt_mm')


def _module_name(path):
    rel = osp.relpath(path, REPO)[:-len('.py')].replace(os.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _imports(path, name):
    """smt_mm modules imported anywhere in the file (relative ones
    resolved)."""
    is_pkg = path.endswith('__init__.py')
    base = name.split('.') if is_pkg else name.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[:len(base) - node.level + 1]
                module = '.'.join(parent +
                                  ([node.module] if node.module else []))
            else:
                module = node.module or ''
            found.add(module)
            found |= {f'{module}.{a.name}' for a in node.names}
    return {m for m in found if m.startswith('smt_mm')}


def import_graph():
    files = {}
    for root, _, names in os.walk(PACKAGE):
        for n in names:
            if n.endswith('.py'):
                path = osp.join(root, n)
                files[_module_name(path)] = path
    return {
        name: {m
               for m in _imports(path, name) if m in files and m != name}
        for name, path in files.items()
    }


def find_cycle(graph):
    state = {}

    def visit(node, stack):
        state[node] = 'open'
        for dep in sorted(graph[node]):
            if state.get(dep) == 'open':
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep, stack + [dep])
                if cycle:
                    return cycle
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_find_cycle_sees_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == \
        ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert 'smt_mm.models.backbones.smt' in graph
    assert find_cycle(graph) is None


# The house, bottom up (README "Layout"): a subpackage imports only from
# lower layers; those of one layer do not import each other.
LAYERS = [
    {'errors', 'version'},
    {'files'},
    {'checkpoint'},
    {'models'},
    {'engine'},
    {'utils'},
    {'apis', 'visualization'},
    {'deployment', 'benchmark'},
]


def _layer(module):
    part = module.split('.')[1] if '.' in module else ''
    for i, layer in enumerate(LAYERS):
        if part in layer:
            return i, part
    raise AssertionError(f'{module}: add its subpackage to LAYERS')


def test_subpackages_import_only_lower_layers():
    graph = import_graph()
    wrong = []
    for name, deps in graph.items():
        if name == 'smt_mm':  # the package's __init__ registers
            continue
        level, part = _layer(name)
        for dep in deps:
            if dep == 'smt_mm':
                continue
            dep_level, dep_part = _layer(dep)
            if dep_part != part and dep_level >= level:
                wrong.append(f'{name} -> {dep}')
    assert not wrong, wrong


def test_models_do_not_import_tool_helpers():
    graph = import_graph()
    tool_helpers = {m
                    for m in graph if m.startswith('smt_mm.utils.')
                    } - {'smt_mm.utils.package'}
    for name, deps in graph.items():
        if name.startswith(('smt_mm.models', 'smt_mm.engine')):
            assert not deps & tool_helpers, name


def test_import_only_registers():
    code = ('import sys, smt_mm; print(sorted(m for m in sys.modules '
            "if m.startswith('smt_mm')))")
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=REPO,
                         check=True,
                         capture_output=True,
                         text=True).stdout
    loaded = set(ast.literal_eval(out.strip().splitlines()[-1]))
    assert 'smt_mm.models.backbones.smt' in loaded
    helpers = {
        'smt_mm.utils.cli', 'smt_mm.utils.config', 'smt_mm.utils.runner',
        'smt_mm.utils.distributed', 'smt_mm.utils.resume',
        'smt_mm.utils.dataset_check'
    }
    assert not loaded & helpers
