# Copyright (c) SMT-MM contributors. All rights reserved.
"""The gates for files at paths that a user, a config or another file names:
only regular files are read (:func:`file_problem`), and nothing the user
has is replaced without asking (:func:`check_output_file`).

Opening a FIFO blocks until something writes to it, and reading a device
such as ``/dev/zero`` never ends, so every reader of a named path asks
:func:`file_problem` first (``os.stat`` follows symlinks and opens
nothing) and says what the path is instead of hanging.
"""
import os
import os.path as osp
import stat
from typing import Optional, Sequence

from smt_mm.errors import LaunchError

_KINDS = {
    'a directory': stat.S_ISDIR,
    'a FIFO (named pipe)': stat.S_ISFIFO,
    'a character device': stat.S_ISCHR,
    'a block device': stat.S_ISBLK,
    'a socket': stat.S_ISSOCK,
}


def file_problem(path) -> Optional[str]:
    """None when ``path`` is a regular file (through symlinks), else what it
    is: ``'not found'``, ``'a directory'``, ``'a FIFO (named pipe)'``, ...
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, a symlink loop, a NUL byte
        return 'not found'
    if stat.S_ISREG(mode):
        return None
    return next((kind for kind, test in _KINDS.items() if test(mode)),
                'not a regular file')


def read_small_text(path, limit: int = 4096) -> Optional[str]:
    """The text of a small regular file (at most ``limit`` bytes are read),
    or None when ``path`` is not a regular file."""
    if file_problem(path) is not None:
        return None
    with open(path, errors='replace') as f:
        return f.read(limit)


def check_output_file(path,
                      flag: str,
                      inputs: Sequence = (),
                      overwrite: bool = False) -> None:
    """The gate for a file a tool writes at a path the user gave: refused
    with one line when it is a folder, one of the run's ``inputs`` (also
    through a link or another name), or, without ``overwrite``, anything
    that exists (a link included). ``flag`` names the option in the
    message. Remote paths (``s3://``...) are left to their backend.

    Raises:
        LaunchError: Naming the path and what to do instead.
    """
    path = str(path)
    if '://' in path or not osp.lexists(path):
        return
    if osp.isdir(path):
        raise LaunchError(f'{flag} {path} is a folder; name a file')
    for given in inputs:
        if given and osp.exists(given) and osp.exists(path) and \
                osp.samefile(path, given):
            raise LaunchError(
                f'{flag} {path} is an input of this run ({given}); choose '
                'another path (inputs are never overwritten)')
    if not overwrite:
        raise LaunchError(f'{flag} {path} exists; pass --overwrite to '
                          'replace it, or choose another path')
