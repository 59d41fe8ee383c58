# Copyright (c) SMT-MM contributors. All rights reserved.
"""``python -m smt_mm.launch.upstream``: ``export`` never replaces the
config, a file it inherits, or (without ``--overwrite``) any existing file;
``run`` of an upstream ``train`` takes the work-dir lock."""
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from smt_mm.errors import LaunchError
from smt_mm.launch.upstream import export_config, run_tool
from smt_mm.launch.workdir import LOCK_NAME

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


@pytest.fixture
def configs(tmp_path):
    (tmp_path / 'base.py').write_text('model = dict(type="SMT")\n')
    (tmp_path / 'mine.py').write_text(
        "_base_ = ['./base.py']\ncustom_imports = dict(imports='json')\n")
    return tmp_path / 'mine.py', tmp_path / 'base.py'


def test_export_refuses_inputs_and_existing_files(tmp_path, configs):
    mine, base = configs
    os.symlink(mine, tmp_path / 'link.py')
    (tmp_path / 'other.py').write_text('mine')
    for out, overwrite, what in [
        (base, True, 'is an input of this run'),
        (tmp_path / 'link.py', True, 'is an input of this run'),
        (tmp_path / 'other.py', False, 'exists; pass --overwrite'),
    ]:
        before = {p: p.read_bytes() for p in tmp_path.glob('*.py')}
        with pytest.raises(LaunchError, match=what):
            export_config(str(mine), str(out), overwrite)
        assert {p: p.read_bytes() for p in tmp_path.glob('*.py')} == before
    export_config(str(mine), str(tmp_path / 'other.py'), overwrite=True)
    flat = Config.fromfile(str(tmp_path / 'other.py'))
    assert flat.custom_imports.imports == ['smt_mm', 'json']
    assert flat.model.type == 'SMT'


def test_upstream_train_takes_the_work_dir_lock(tmp_path, configs):
    mine, _ = configs
    work = tmp_path / 'work'
    work.mkdir()
    holder = subprocess.Popen([
        sys.executable, '-c', 'import fcntl, sys, time\n'
        f'f = open({str(work / LOCK_NAME)!r}, "w")\n'
        'fcntl.lockf(f, fcntl.LOCK_EX); print("held", flush=True)\n'
        'time.sleep(60)'
    ],
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        # a stand-in for mmpretrain's train.py: it must not start
        script = tmp_path / 'train.py'
        script.write_text(f'open({str(tmp_path / "ran")!r}, "w")\n')
        with pytest.raises(LaunchError, match='is in use by another'):
            run_tool(
                'mmpretrain', str(script),
                [str(mine), '--work-dir', str(work)])
        assert not (tmp_path / 'ran').exists()
    finally:
        holder.kill()
        holder.wait()
