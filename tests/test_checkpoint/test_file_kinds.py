# Copyright (c) SMT-MM contributors. All rights reserved.
"""Only regular files are read from the paths a user, a config or a file
names (smt_mm.files): a FIFO, a directory or a device is one line that says
what it is, never a hang or an endless read."""
import os
import os.path as osp

import pytest
import torch
from helpers import deadline
from mmengine.config import Config

from smt_mm.checkpoint import read_checkpoint
from smt_mm.errors import CheckpointLoadError, LaunchError
from smt_mm.files import file_problem
from smt_mm.launch.resume import latest_complete_checkpoint, set_resume
from smt_mm.launch.workdir import LOCK_NAME, lock_work_dir

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


@pytest.fixture
def odd_files(tmp_path):
    os.mkfifo(tmp_path / 'fifo.pth')
    (tmp_path / 'folder.pth').mkdir()
    os.symlink('/dev/zero', tmp_path / 'zero.pth')
    return {
        'fifo.pth': 'a FIFO (named pipe)',
        'folder.pth': 'a directory',
        'zero.pth': 'a character device'
    }


def test_each_kind_is_named(tmp_path, odd_files):
    for name, kind in odd_files.items():
        assert file_problem(tmp_path / name) == kind
    assert file_problem(tmp_path / 'missing.pth') == 'not found'
    (tmp_path / 'real.pth').write_bytes(b'x')
    assert file_problem(tmp_path / 'real.pth') is None


def test_read_checkpoint_says_what_the_path_is(tmp_path, odd_files):
    for name, kind in odd_files.items():
        with deadline(20), pytest.raises(CheckpointLoadError) as err:
            read_checkpoint(str(tmp_path / name))
        assert str(err.value) == (f'checkpoint {tmp_path / name} is {kind}, '
                                  'not a checkpoint file')


def test_resume_scan_skips_what_is_not_a_file(tmp_path, odd_files):
    good = tmp_path / 'epoch_1.pth'
    torch.save({'w': torch.ones(1)}, good)
    os.utime(good, (1, 1))  # the odd files are newer
    for pointer in ('/dev/zero', str(tmp_path / 'fifo.pth')):
        (tmp_path / 'last_checkpoint').write_text(pointer)
        with deadline(20):
            assert latest_complete_checkpoint(str(tmp_path)) == str(good)
    os.remove(tmp_path / 'last_checkpoint')
    os.mkfifo(tmp_path / 'last_checkpoint')
    with deadline(20):
        assert latest_complete_checkpoint(str(tmp_path)) == str(good)
    cfg = Config(dict(work_dir=str(tmp_path)))
    for name, kind in odd_files.items():
        with pytest.raises(LaunchError) as err:
            set_resume(cfg, str(tmp_path / name))
        assert str(err.value).endswith(f' is {kind}, not a checkpoint file')


def test_nothing_to_resume_never_reads_the_pointer(tmp_path):
    os.mkfifo(tmp_path / 'last_checkpoint')
    cfg = Config(dict(work_dir=str(tmp_path)))
    with deadline(20):
        set_resume(cfg, 'auto')
    assert cfg.resume is False and cfg.get('load_from') is None


def test_a_fifo_lock_file_is_one_line(tmp_path):
    os.mkfifo(tmp_path / LOCK_NAME)
    with deadline(20), pytest.raises(LaunchError) as err:
        lock_work_dir(str(tmp_path))
    assert str(err.value) == (
        f'cannot lock work dir {tmp_path}: '
        f'{osp.join(str(tmp_path), LOCK_NAME)} is a FIFO (named pipe), not '
        'a lock file; remove it')


def test_tools_name_what_a_checkpoint_path_is(tmp_path, odd_files):
    from helpers import tool_error
    for tool, args in [
        ('tools/test.py', ['configs/cls/smt_t_in1k.py']),
        ('tools/demo.py', ['configs/cls/smt_t_in1k.py']),
    ]:
        path = tmp_path / 'fifo.pth'
        argv = [*args, path] if tool == 'tools/test.py' else \
            ['README.md', *args, path, '--out', tmp_path / 'o.png']
        with deadline(60):
            message = tool_error(tool, argv)
        assert message.endswith(f'{path} is a FIFO (named pipe), not a ' + (
            'checkpoint file' if tool == 'tools/test.py' else 'file')), message
