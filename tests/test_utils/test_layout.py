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


def moved_modules():
    """``smt_mm.utils.MOVED``: the deprecated paths of moved modules, each a
    file that only hands over to the new module."""
    path = osp.join(PACKAGE, 'utils', '__init__.py')
    tree = ast.parse(open(path).read())
    return next(
        ast.literal_eval(node.value) for node in tree.body
        if isinstance(node, ast.Assign) and any(
            getattr(t, 'id', None) == 'MOVED' for t in node.targets))


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


def house(graph):
    """The graph without the deprecated aliases (``smt_mm.utils`` and the
    old paths it lists): they are not part of the house."""
    aliases = set(moved_modules()) | {'smt_mm.utils'}
    return {
        name: deps - aliases
        for name, deps in graph.items() if name not in aliases
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


# The house, bottom up (docs/architecture.md "Layers"): a subpackage (or
# top-level module) imports only from lower layers; those of one layer do
# not import each other. utils holds only the deprecated aliases of moved
# modules (left out by house()), on top.
LAYERS = [
    {'errors', 'version', 'config_tree'},
    {'files', 'config_scheme'},
    {'checkpoint'},
    {'models'},
    {'engine'},
    {'checks', 'datasets'},
    {'launch'},
    {'apis', 'visualization'},
    {'deployment', 'benchmark'},
    {'utils'},
]


def _layer(module):
    part = module.split('.')[1] if '.' in module else ''
    for i, layer in enumerate(LAYERS):
        if part in layer:
            return i, part
    raise AssertionError(f'{module}: add its subpackage to LAYERS')


def test_nothing_imports_the_deprecated_aliases():
    graph = import_graph()
    aliases = set(graph) - set(house(graph))
    assert {'smt_mm.utils', 'smt_mm.utils.cli'} <= aliases
    wrong = sorted(f'{name} -> {dep}' for name, deps in house(graph).items()
                   for dep in graph[name] & aliases)
    assert wrong == []


def test_subpackages_import_only_lower_layers():
    graph = house(import_graph())
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


# what only the tools use: launching jobs, checks before a run, synthetic
# data, and the deprecated aliases
TOOL_HELPERS = ('launch', 'checks', 'datasets', 'utils')


def _tool_helper(module):
    return module.split('.')[1:2] in ([part] for part in TOOL_HELPERS)


def models_importing_tool_helpers(graph):
    """``module -> helper`` for each module of ``smt_mm.models`` or
    ``smt_mm.engine`` that imports (function-local imports included) a
    module of the tools' helper packages."""
    aliases = set(moved_modules())  # the old paths hand over, that is all
    return sorted(f'{name} -> {dep}' for name, deps in graph.items()
                  if name.startswith(('smt_mm.models',
                                      'smt_mm.engine')) and name not in aliases
                  for dep in deps if _tool_helper(dep))


def test_models_do_not_import_tool_helpers():
    """The network and the runner never need the tools' helpers, even by
    a function-local import (a model built in a user's script must not
    drag in the launchers)."""
    graph = import_graph()
    assert 'smt_mm.launch.config' in graph and 'smt_mm.utils' in graph
    assert models_importing_tool_helpers(graph) == []


def test_models_importing_tool_helpers_sees_them():
    graph = {
        'smt_mm.models.hub': {'smt_mm.config_scheme', 'smt_mm.checks.config'},
        'smt_mm.engine.runner': {'smt_mm.launch'},
        'smt_mm.engine.hooks': {'smt_mm.utils.cli'},
        'smt_mm.engine.progress': {'smt_mm.utils'},  # an old path's alias
        'smt_mm.apis.model': {'smt_mm.launch.config'},
    }
    assert models_importing_tool_helpers(graph) == [
        'smt_mm.engine.hooks -> smt_mm.utils.cli',
        'smt_mm.engine.runner -> smt_mm.launch',
        'smt_mm.models.hub -> smt_mm.checks.config'
    ]


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
    helpers = sorted(m for m in loaded if _tool_helper(m))
    assert helpers == []
