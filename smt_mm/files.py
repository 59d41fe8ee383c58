# Copyright (c) SMT-MM contributors. All rights reserved.
"""The gate for files read from paths that a user, a config or another file
names: only regular files are opened.

Opening a FIFO blocks until something writes to it, and reading a device
such as ``/dev/zero`` never ends, so every reader of a named path asks
:func:`file_problem` first (``os.stat`` follows symlinks and opens
nothing) and says what the path is instead of hanging.
"""
import os
import stat
from typing import Optional

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
