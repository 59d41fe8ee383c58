# Copyright (c) SMT-MM contributors. All rights reserved.
"""The work dir of a training run: created with a clear error, one run in
it at a time. (The config dump that never replaces the user's files is
:mod:`smt_mm.engine.config_dump`.)"""
import errno
import fcntl
import os
import os.path as osp

from smt_mm.errors import LaunchError
from smt_mm.files import file_problem

LOCK_NAME = '.smt_mm.lock'
_held_locks = {}  # work dir -> open file holding the lock (process lifetime)


def check_path_length(path: str, what: str) -> None:
    """Fail naming the part of ``path`` that is longer than its file system
    allows (the kernel would refuse it with "File name too long" only when
    the run writes there)."""
    if '://' in str(path):
        return
    target = osp.abspath(path)
    existing = target
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    try:
        name_max = os.pathconf(existing, 'PC_NAME_MAX')
        path_max = os.pathconf(existing, 'PC_PATH_MAX')
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in target.split(os.sep):
        if len(os.fsencode(part)) > name_max:
            raise LaunchError(
                f'{what} {path} cannot be created: the folder name '
                f'{part[:40]}... is {len(os.fsencode(part))} bytes long and '
                f'the file system allows {name_max}; choose a shorter name')
    # the run writes files two levels below (timestamp/vis_data/...)
    if len(os.fsencode(target)) + 64 > path_max:
        raise LaunchError(f'{what} {path} is too long a path '
                          f'({len(os.fsencode(target))} bytes; the file '
                          f'system allows {path_max} for a whole path, '
                          'files inside included); choose a shorter one')


def make_work_dir(path: str) -> None:
    """Create the work dir, failing with one line when it cannot be."""
    check_path_length(path, 'work dir')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise LaunchError(f'work dir {path} cannot be created: '
                          f'{err.strerror}') from None


def lock_work_dir(work_dir: str) -> None:
    """Hold a lock on ``work_dir`` for the rest of this process, or fail at
    once when another run holds it.

    The lock is a POSIX record lock (``fcntl.lockf``) on
    ``work_dir/.smt_mm.lock``: the kernel releases it when the process ends,
    however it ends (a killed run never leaves a stale lock), and, unlike
    ``flock``, data-loader workers forked from the run do not hold it, so
    it is free as soon as the run itself is gone. The file keeps the pid of
    the holder for the message.
    """
    if '://' in str(work_dir):
        return
    key = osp.realpath(work_dir)
    if key in _held_locks:
        return
    make_work_dir(work_dir)
    path = osp.join(work_dir, LOCK_NAME)
    problem = file_problem(path) if osp.lexists(path) else None
    if problem and problem != 'not found':  # a dangling link: see below
        raise LaunchError(f'cannot lock work dir {work_dir}: {path} is '
                          f'{problem}, not a lock file; remove it')
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as err:
        raise LaunchError(f'cannot lock work dir {work_dir}: {path}: '
                          f'{err.strerror}') from None
    lock_file = os.fdopen(fd, 'r+')
    try:
        fcntl.lockf(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = lock_file.read().strip()
        lock_file.close()
        if err.errno in (errno.EACCES, errno.EAGAIN):
            raise LaunchError(
                f'work dir {work_dir} is in use by another training run'
                f'{f" (pid {holder})" if holder.isdigit() else ""}: two '
                'runs would mix their checkpoints; wait for it to end, or '
                'choose another --work-dir') from None
        raise LaunchError(f'cannot lock work dir {work_dir}: {path}: '
                          f'{err.strerror}') from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(f'{os.getpid()}\n')
    lock_file.flush()
    _held_locks[key] = lock_file


def release_work_dir(work_dir: str) -> None:
    """Release the lock :func:`lock_work_dir` took (tests, tools that run
    several trainings in one process); ending the process does as well."""
    lock_file = _held_locks.pop(osp.realpath(work_dir), None)
    if lock_file is not None:
        lock_file.close()


def is_first_process(launcher: str) -> bool:
    """Whether this process is rank 0 of its launch (before the process
    group exists: from the launcher's environment)."""
    if launcher == 'none':
        return True
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    return rank.strip() in ('', '0')
