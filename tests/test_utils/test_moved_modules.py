# Copyright (c) SMT-MM contributors. All rights reserved.
"""The old paths of moved modules (``smt_mm.utils.MOVED``) keep working for
one release: each imports, is the new module itself and warns with a
``DeprecationWarning`` naming the new path."""
import importlib
import os.path as osp
import sys

import pytest
from helpers import REPO, run_tool

from smt_mm.utils import MOVED, SHIM

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


def _file(module):
    return osp.join(REPO, *module.split('.')) + '.py'


def _forget(old):
    """Unload the alias so that importing it runs (and warns) again."""
    sys.modules.pop(old, None)
    parent, _, child = old.rpartition('.')
    vars(sys.modules[parent]).pop(child, None)


def test_old_paths_are_the_table_and_nothing_else():
    """Each old path is the file SHIM makes from the table; smt_mm/utils
    holds nothing but those aliases."""
    for old, new in MOVED.items():
        assert osp.isfile(_file(new)), new
        with open(_file(old), encoding='utf-8') as f:
            assert f.read() == SHIM.format(new=new), (
                f'{_file(old)}: write smt_mm.utils.SHIM.format(new={new!r})')
    import glob
    here = {
        'smt_mm.utils.' + osp.basename(p)[:-3]
        for p in glob.glob(osp.join(REPO, 'smt_mm', 'utils', '*.py'))
    }
    assert here - {'smt_mm.utils.__init__'} <= set(MOVED)


@pytest.mark.parametrize('old', sorted(MOVED))
def test_old_path_warns_and_gives_the_new_module(old):
    new = MOVED[old]
    module = importlib.import_module(new)
    _forget(old)
    with pytest.warns(DeprecationWarning, match=f'{old} .*use {new}$') as got:
        alias = importlib.import_module(old)
    assert alias is module
    assert sys.modules[old] is module
    public = [name for name in vars(module) if not name.startswith('_')]
    assert public
    parent = importlib.import_module(old.rpartition('.')[0])
    assert all(
        getattr(getattr(parent,
                        old.rpartition('.')[2]), name) is getattr(
                            module, name) for name in public)
    # importing again gives the module without a second warning
    assert importlib.import_module(old) is module
    assert len(got) == 1


def test_the_warning_names_the_importing_line():
    old = 'smt_mm.utils.cli'
    _forget(old)
    with pytest.warns(DeprecationWarning) as got:
        from smt_mm.utils.cli import run_cli
    assert got[0].filename == __file__
    from smt_mm.launch.cli import run_cli as new
    assert run_cli is new
    _forget(old)
    with pytest.warns(DeprecationWarning, match='smt_mm.launch.cli') as got:
        from smt_mm.utils import cli
    assert got[0].filename == __file__
    assert cli.run_cli is new


def test_python_m_of_an_old_path_runs_the_new_module():
    proc = run_tool([sys.executable, '-m', 'smt_mm.utils.upstream', '--help'])
    assert 'usage: python -m smt_mm.launch.upstream' in proc.stdout
    assert 'use smt_mm.launch.upstream' in proc.stderr
