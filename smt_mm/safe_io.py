# Copyright (c) SMT-MM contributors. All rights reserved.
"""Safe checkpoint reading and crash-proof checkpoint writing for mmengine.

Two of mmengine 0.10.7's storage entry points are replaced (``apply()``
runs once when ``smt_mm`` is imported):

* the loader for local paths of ``CheckpointLoader`` (used by ``load_from``,
  ``runner.resume`` and ``init_cfg=dict(type='Pretrained')``) becomes
  :func:`smt_mm.models.utils.safe_load`: ``weights_only=True`` and one clear
  error per failure;
* the ``local`` file backend, through which ``save_checkpoint`` writes,
  becomes :class:`AtomicLocalBackend`: a process killed while saving leaves
  the previous file, never a truncated one that ``--resume`` would pick.
"""
import os
import os.path as osp
import tempfile
import zipfile
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner.checkpoint import CheckpointLoader

_applied = False


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend whose ``put`` replaces files atomically.

    The bytes go to a temporary file in the destination folder, are flushed
    to disk, and the temporary file is renamed over the destination:
    ``os.replace`` within one file system is atomic, so readers see the old
    complete file or the new complete file, and a crash in between leaves
    only a hidden ``.<name>.*.tmp`` file behind.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.tmp')
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


def is_complete_checkpoint(path: str) -> bool:
    """Cheap check that ``path`` is a whole torch (zip) checkpoint.

    A truncated zip has no central directory at its end, so opening it
    fails; the tensors themselves are not read.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _load_from_local(filename, map_location):
    from smt_mm.models.utils.checkpoint import safe_load
    return safe_load(filename, map_location=map_location)


def apply() -> None:
    """Install the safe loader and the atomic backend (idempotent)."""
    global _applied
    if _applied:
        return
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_from_local)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    _applied = True
