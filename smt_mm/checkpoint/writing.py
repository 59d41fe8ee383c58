# Copyright (c) SMT-MM contributors. All rights reserved.
"""Crash-proof checkpoint writing.

:class:`AtomicLocalBackend` is registered with mmengine under its own name,
``'smt_atomic_local'`` (mmengine's ``'local'`` backend is left alone);
SMT-MM's runner saves checkpoints through it, and
:func:`~smt_mm.checkpoint.enable_safe_loading` can make it the default.
"""
import glob
import os
import os.path as osp
import secrets
import time
import zipfile
from pathlib import Path
from typing import Iterator, List, Tuple, Union

from mmengine.fileio import LocalBackend, register_backend

from smt_mm.files import file_problem

ATOMIC_BACKEND = 'smt_atomic_local'
# .<file name>.<12 hex digits>.tmp: hidden, never matched by *.pth
_TMP_PATTERN = '.*.pth.' + '?' * 12 + '.tmp'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend whose ``put`` replaces files atomically.

    The bytes go to a temporary file in the destination folder, are flushed
    to disk, and the temporary file is renamed over the destination:
    ``os.replace`` within one file system is atomic, so readers see the old
    complete file or the new complete file. The temporary file is created
    with mode 0666 minus the umask, as ``open()`` would, so checkpoints keep
    the permissions the user expects (0644 under umask 022). A process
    killed mid-save leaves a hidden ``.<name>.<hex>.tmp`` file, which
    :func:`remove_stale_temporaries` deletes on the next run.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = create_temporary(filepath)
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_dir(folder)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend)


def create_temporary(filepath: str) -> Tuple[int, str]:
    """A new hidden ``.<name>.<hex>.tmp`` beside ``filepath``, opened for
    writing with mode 0666 minus the umask (as ``open()`` creates files):
    ``(fd, path)``."""
    tmp = osp.join(
        osp.dirname(osp.abspath(filepath)),
        f'.{osp.basename(filepath)}.{secrets.token_hex(6)}.tmp')
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp


def _fsync_dir(folder: str) -> None:
    """Persist a rename (the folder entry) where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str, older_than: float = 0) -> List[str]:
    """Delete the temporary files that interrupted saves left in
    ``folder`` (only those unchanged for ``older_than`` seconds); returns
    their paths."""
    removed = []
    now = time.time()
    for path in glob.glob(osp.join(glob.escape(folder), _TMP_PATTERN)):
        try:
            if now - osp.getmtime(path) < older_than:
                continue
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def complete_checkpoints(folder: str,
                         verify_data: bool = False) -> Iterator[str]:
    """The complete ``*.pth`` files of ``folder``, newest first (see
    :func:`is_complete_checkpoint` for ``verify_data``)."""
    found = [
        path for path in glob.glob(osp.join(glob.escape(folder), '*.pth'))
        if file_problem(path) is None
    ]
    for path in sorted(found, key=osp.getmtime, reverse=True):
        if is_complete_checkpoint(path, verify_data):
            yield path


def is_complete_checkpoint(path: str, verify_data: bool = False) -> bool:
    """Whether ``path`` is a whole torch (zip) checkpoint.

    A truncated zip has no central directory at its end, so opening it
    fails. With ``verify_data`` every record is also read and checked
    against the CRC-32 that ``torch.save`` stores (damage inside a file
    that torch itself would load without noticing). Anything but a regular
    file (a FIFO would block the reader) is not a checkpoint.
    """
    if file_problem(path) is not None:
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            if not archive.namelist():
                return False
            return not verify_data or archive.testzip() is None
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return False
