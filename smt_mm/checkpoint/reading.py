# Copyright (c) SMT-MM contributors. All rights reserved.
"""Reading checkpoints without letting them run code.

:func:`read_checkpoint` is the one function through which SMT-MM reads a
checkpoint, wherever it comes from: a local path, an ``http(s)://`` URL
(downloaded once to torch's hub cache, ``$TORCH_HOME/hub/checkpoints``),
the named schemes of mmengine (``torchvision://``, ``open-mmlab://``,
``mmcls://``) or storage backends (``s3://``, ``petrel://``, ``pavi://``).
Every file is unpickled with ``weights_only=True`` plus the plain-data
allow-list of :mod:`.unpickler`, and config text stored in it (which
mmengine's resume and the OpenMMLab inferencers would execute) is dropped.

mmengine's own loaders (``load_from``, ``init_cfg=dict(type='Pretrained')``,
``get_model(..., pretrained=...)``) go through ``CheckpointLoader``;
:func:`safe_loading` routes all of its schemes here for the duration of a
``with`` block (SMT-MM's runner and tools use it), and
:func:`enable_safe_loading` does so for the whole process, for users' own
scripts. Importing ``smt_mm`` changes nothing.
"""
import hashlib
import io
import logging
import math
import os
import os.path as osp
import pickle
import re
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict
from urllib.parse import urlparse

import torch
from mmengine.fileio import register_backend
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.utils import apply_to

from smt_mm.errors import (CheckpointLoadError, CorruptCheckpointError,
                           UnsafeCheckpointError)
from smt_mm.files import file_problem
from .budget import check_container, check_tensors
from .unpickler import materialize
from .unpickler import safe_globals as allowed_globals
from .writing import (AtomicLocalBackend, create_temporary,
                      remove_stale_temporaries)

# Set to 1 to unpickle trusted legacy files without the safe loader. Such a
# file can run any code on this machine while it loads.
UNSAFE_LOAD_ENV = 'SMT_MM_UNSAFE_LOAD'
# seconds a download may stall (connect or read) before it fails
_STALL_TIMEOUT = 60
# A download slower than this (bytes/s, averaged once it has run for the
# grace period in seconds) is a server dripping bytes, not a checkpoint.
_MIN_RATE = 16 << 10
_RATE_GRACE = 30
# The largest body downloaded, in MiB (SMT-L's release file is ~0.9 GB).
MAX_DOWNLOAD_ENV = 'SMT_MM_MAX_DOWNLOAD_MB'
_MAX_DOWNLOAD_BYTES = 4096 << 20
# torch hub's convention: a file name ending in -<first hex digits of the
# file's SHA-256>.<ext>
_HUB_HASH = re.compile(r'-([a-f0-9]{8,64})\.\w+$')
# Where a checkpoint keeps config text that mmengine would execute:
# meta['config'] (Runner.resume), meta['cfg'] and
# message_hub['runtime_info']['cfg'] (the inferencers, given no config).
_CONFIG_TEXT = (('meta', 'config'), ('meta', 'cfg'), ('message_hub',
                                                      'runtime_info', 'cfg'))


def unsafe_load_enabled() -> bool:
    """Whether the user opted out of safe loading
    (``SMT_MM_UNSAFE_LOAD=1``)."""
    return os.environ.get(UNSAFE_LOAD_ENV, '') == '1'


def read_checkpoint(filename: str, map_location='cpu') -> Any:
    """Read a checkpoint from a path, URL or storage scheme, safely.

    Args:
        filename (str): Local path, ``http(s)://`` URL, or a scheme mmengine
            knows (``torchvision://``, ``open-mmlab://``, ``mmcls://``,
            ``s3://``, ``petrel://``, ``pavi://``).
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The loaded object, config text removed.

    Raises:
        CheckpointLoadError: The file is missing, truncated, not a
            checkpoint, or cannot be downloaded.
        UnsafeCheckpointError: The file holds objects the safe loader
            refuses.
    """
    filename = str(filename)
    for prefixes, reader in _SCHEME_READERS:
        if filename.startswith(prefixes):
            return reader(filename, map_location)
    scheme = re.match(r'([a-zA-Z][\w+.-]*)://', filename)
    if scheme:
        scheme = scheme.group(1)
        raise CheckpointLoadError(
            f'cannot read checkpoint {filename}: unknown scheme {scheme}:// '
            '(valid: a local path, http(s)://, torchvision://, '
            'open-mmlab://, mmcls://, s3://, petrel://, pavi://)')
    return _read_local(filename, map_location)


def _read_local(filename: str, map_location) -> Any:
    path = osp.expanduser(filename)
    problem = file_problem(path)
    if problem == 'not found':
        raise CheckpointLoadError(f'checkpoint file not found: {filename}')
    if problem:
        raise CheckpointLoadError(
            f'checkpoint {filename} is {problem}, not a checkpoint file')
    return safe_load(path, filename, map_location)


def safe_load(source, filename: str, map_location='cpu') -> Any:
    """Unpickle ``source`` (a path or seekable binary file object)
    weights-only, within a memory budget.

    Only tensors, plain containers, plain numeric numpy data and mmengine's
    ``HistoryBuffer`` are rebuilt (:mod:`.unpickler`), and nothing may
    allocate much beyond the bytes the file holds (:mod:`.budget`); with
    ``SMT_MM_UNSAFE_LOAD=1`` the file is unpickled fully, with a warning.
    ``filename`` names the file in errors.
    """
    if unsafe_load_enabled():
        print_log(
            f'{UNSAFE_LOAD_ENV}=1: loading {filename} with full '
            'unpickling; the file can run code on this machine',
            logger='current',
            level=logging.WARNING)
        return torch.load(
            source, map_location=map_location, weights_only=False)
    if isinstance(source, (str, os.PathLike)):
        with open(source, 'rb') as f:
            return safe_load(f, filename, map_location)
    check_container(source, filename)
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            # weights_only explicit: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD must
            # not switch safe loading off behind the user's back.
            loaded = torch.load(
                source, map_location=map_location, weights_only=True)
        loaded = materialize(loaded)
        check_tensors(loaded, filename)
    except CheckpointLoadError:
        raise
    except pickle.UnpicklingError as err:
        reason = _refusal_reason(err)
        if _is_refusal(err, reason):
            raise UnsafeCheckpointError(
                f'refused to load checkpoint {filename} for safety: it holds '
                f'what the safe loader does not rebuild ({reason}); if you '
                f'trust its source, '
                f'{UNSAFE_LOAD_ENV}=1 loads it unsafely') from None
        raise _corrupt(filename, err) from None
    except Exception as err:  # a hostile file can make torch raise anything
        raise _corrupt(filename, err) from None
    return drop_config_text(loaded)


def drop_config_text(checkpoint: Any) -> Any:
    """Remove the config text mmengine would execute (see
    ``_CONFIG_TEXT``); the weights and training state stay."""
    for path in _CONFIG_TEXT:
        node = checkpoint
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return checkpoint


def _is_refusal(err: Exception, reason: str) -> bool:
    """A refusal of the safe unpickler, not a damaged file."""
    text = str(err)
    return (text.startswith('Weights only load failed')
            and not reason.startswith('Unsupported operand')) \
        or 'in a checkpoint' in text


def _refusal_reason(err: Exception) -> str:
    """The line of torch's weights-only error that says what was found
    (e.g. ``unsupported GLOBAL posix.system``), without its advice to
    switch safe loading off."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines[1:]:
        # skip torch's advice lines: "(1) In PyTorch 2.6 ...", "(2) ..."
        if not line.startswith(
            ('Check the documentation', 'Please file', '(1) ', '(2) ')):
            return line.replace('WeightsUnpickler error: ', '').rstrip('.')
    return lines[0] if lines else type(err).__name__


def _corrupt(filename: str, err: Exception) -> CorruptCheckpointError:
    what = 'the file is truncated or not a PyTorch checkpoint'
    if isinstance(err, EOFError):
        detail = 'unexpected end of file'
    elif isinstance(err, pickle.UnpicklingError):
        # An opcode the safe unpickler does not know: bytes that are no
        # pickle at all, or a pickle written in a way it does not accept.
        detail = _refusal_reason(err)
        what = ('the file is truncated, not a PyTorch checkpoint, or uses '
                'pickle instructions the safe loader refuses')
    else:
        first = ' '.join(str(err).split('. ')[0].split())
        detail = f'{type(err).__name__}: {first}' if first \
            else type(err).__name__
    detail = ' '.join(detail.split())  # one line
    return CorruptCheckpointError(
        f'cannot read checkpoint {filename}: {what} ({detail[:200]})')


# ----------------------------------------------------------------- remote


def download_checkpoint(url: str) -> str:
    """The local copy of ``url`` in torch's hub cache, downloaded first if
    needed (by local rank 0 first in distributed runs: one download per
    machine, the other processes then find the file).

    The cache is keyed by the whole URL: ``$TORCH_HOME/hub/checkpoints/
    smt_mm/<sha256 of the URL>/<file name>``. A file name ending in
    ``-<hex>.pth`` (torch hub's convention) must match the start of the
    file's SHA-256. See :func:`_download` for the limits.
    """
    from mmengine.dist import get_dist_info, get_local_rank
    path = cached_path(url)
    _, world_size = get_dist_info()
    if get_local_rank() == 0:
        _download(url, path)
    if world_size > 1:
        torch.distributed.barrier()
        _download(url, path)
    return path


def cached_path(url: str) -> str:
    """Where the download of ``url`` is kept (inside the cache folder
    whatever the URL's path holds)."""
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    name = osp.basename(urlparse(url).path)
    if not re.fullmatch(r'[\w][\w.+-]{0,200}', name):
        name = 'checkpoint.pth'
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'smt_mm', key, name)


def redact_url(url: str) -> str:
    """``url`` without credentials: user info and the query string (signed
    URLs carry their signature there) are replaced by ``...``."""
    parts = urlparse(url)
    if not (parts.query or parts.username or parts.password):
        return url
    netloc = parts.hostname or ''
    if parts.port:
        netloc += f':{parts.port}'
    if parts.username or parts.password:
        netloc = '...@' + netloc
    query = '?...' if parts.query else ''
    return f'{parts.scheme}://{netloc}{parts.path}{query}'


def display_name(filename: str) -> str:
    """``filename`` as logs and messages may show it (URLs redacted)."""
    filename = str(filename)
    return redact_url(filename) if filename.startswith(
        ('http://', 'https://')) else filename


def redact_urls(obj: Any) -> Any:
    """A copy of ``obj`` (nested dicts, lists, tuples, strings) with every
    ``http(s)://`` URL that carries credentials or a query redacted, or
    ``obj`` itself if it has none."""
    redacted = []

    def redact(text: str) -> str:
        shown = display_name(text)
        if shown != text:
            redacted.append(text)
        return shown

    copy = apply_to(obj, lambda x: isinstance(x, str), redact)
    return copy if redacted else obj


def _max_download_bytes() -> int:
    mib = os.environ.get(MAX_DOWNLOAD_ENV, '')
    if not mib:
        return _MAX_DOWNLOAD_BYTES
    try:
        limit = float(mib)
    except ValueError:
        limit = float('nan')
    if not math.isfinite(limit) or limit <= 0:
        raise CheckpointLoadError(
            f'{MAX_DOWNLOAD_ENV}={mib!r} is not a positive number of MiB '
            '(e.g. 8192)')
    return int(limit * (1 << 20))


def _download(url: str, path: str) -> None:
    """Fetch ``url`` into the cache file ``path`` unless it is there
    (:func:`download_file`); temporary files that killed downloads left in
    the cache folder are removed once they have gone quiet."""
    if osp.isfile(path):
        return
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(folder, older_than=2 * _STALL_TIMEOUT)
    download_file(url, path)


def download_file(url: str, path: str) -> None:
    """Download ``url`` to ``path``: the one downloader of SMT-MM (the
    checkpoint cache, timm's weights, ``tools/download.py``). Refused:
    bodies over ``SMT_MM_MAX_DOWNLOAD_MB`` (default 4096), shorter than
    announced, silent for ``_STALL_TIMEOUT`` seconds, or slower than
    ``_MIN_RATE`` bytes/s after ``_RATE_GRACE`` seconds. Nothing partial is
    ever left or used: the body goes to a temporary file beside ``path``,
    renamed over it only when complete and checked.

    Raises:
        CheckpointLoadError: One line naming the URL (credentials
            redacted) and why.
    """
    shown = display_name(url)
    print_log(f'downloading {shown} to {path}', logger='current')
    fd, partial = create_temporary(path)
    try:
        with os.fdopen(fd, 'wb') as out:
            digest = _fetch(url, shown, out)
        expected = _HUB_HASH.search(osp.basename(path))
        if expected and not digest.startswith(expected.group(1)):
            raise CheckpointLoadError(
                f'cannot download checkpoint {shown}: its SHA-256 {digest} '
                f'does not start with {expected.group(1)}, which its file '
                'name promises')
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)


def _fetch(url: str, shown: str, out) -> str:
    """Copy the body of ``url`` to ``out`` within the limits; its SHA-256."""
    import urllib.request
    limit = _max_download_bytes()
    digest = hashlib.sha256()
    received = 0

    def fail(why: str):
        return CheckpointLoadError(f'cannot download checkpoint {shown}: '
                                   f'{why}')

    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'smt_mm'})
        with urllib.request.urlopen(
                request, timeout=_STALL_TIMEOUT) as response:
            announced = response.headers.get('Content-Length')
            announced = int(announced) if announced else None
            if announced is not None and announced > limit:
                raise fail(f'it announces {announced} bytes, more than the '
                           f'limit of {limit} ({MAX_DOWNLOAD_ENV})')
            start = time.monotonic()
            while True:
                chunk = response.read1(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
                if received > limit:
                    raise fail(f'the body exceeds the limit of {limit} '
                               f'bytes ({MAX_DOWNLOAD_ENV})')
                elapsed = time.monotonic() - start
                if elapsed > _RATE_GRACE and \
                        received / elapsed < _MIN_RATE:
                    raise fail(f'too slow ({received} bytes in '
                               f'{elapsed:.0f} s)')
                digest.update(chunk)
                out.write(chunk)
    except CheckpointLoadError:
        raise
    except Exception as err:  # urllib raises many types
        why = ' '.join(str(err).replace(url, shown).split())
        raise fail(f'{type(err).__name__}: {why}') from None
    if announced is not None and received != announced:
        raise fail(f'the body ended after {received} of {announced} bytes')
    return digest.hexdigest()


def _read_url(url: str, map_location) -> Any:
    path = download_checkpoint(url)
    return safe_load(path, display_name(url), map_location)


def _read_named(filename: str, map_location) -> Any:
    """``torchvision://``, ``modelzoo://``, ``open-mmlab://``,
    ``openmmlab://``, ``mmcls://``: mmengine's name tables give the URL."""
    from mmengine.runner import checkpoint as mm
    scheme, name = filename.split('://', 1)
    if scheme in ('torchvision', 'modelzoo'):
        table = mm.get_torchvision_models()
    elif scheme == 'mmcls':
        table = mm.get_mmcls_models()
    else:
        table = mm.get_external_models()
        name = mm.get_deprecated_model_names().get(name, name)
    if name not in table:
        raise CheckpointLoadError(
            f'cannot read checkpoint {filename}: {scheme}:// has no model '
            f'named {name!r}')
    target = table[name]
    if target.startswith(('http://', 'https://')):
        return _read_url(target, map_location)
    return _read_local(target, map_location)


def _read_storage(filename: str, map_location) -> Any:
    """``s3://`` / ``petrel://`` through mmengine's file backend."""
    from mmengine.fileio import get_file_backend
    backend = get_file_backend(filename, backend_args={'backend': 'petrel'})
    with io.BytesIO(backend.get(filename)) as buffer:
        return safe_load(buffer, filename, map_location)


def _read_pavi(filename: str, map_location) -> Any:
    import tempfile
    try:
        from pavi import modelcloud
    except ImportError:
        raise CheckpointLoadError(
            f'cannot read checkpoint {filename}: pavi:// needs the pavi '
            'package') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, model.name)
        model.download(path)
        with open(path, 'rb') as f:
            return safe_load(f, filename, map_location)


_SCHEME_READERS = (
    (('http://', 'https://'), _read_url),
    (('torchvision://', 'modelzoo://', 'open-mmlab://', 'openmmlab://',
      'mmcls://'), _read_named),
    (('s3://', 'petrel://'), _read_storage),
    (('pavi://', ), _read_pavi),
)

# --------------------------------------------- mmengine's CheckpointLoader


def _loader(filename, map_location=None, *args, **kwargs):
    # CheckpointLoader strips nothing: the full name reaches us
    return read_checkpoint(filename, map_location or 'cpu')


def _safe_schemes(current: Dict[str, Callable]) -> Dict[str, Callable]:
    """Every scheme mmengine knows, served by :func:`read_checkpoint`;
    schemes registered by other code keep their loader."""
    ours = {
        '', 'http://', 'https://', 'pavi://', 'modelzoo://', 'torchvision://',
        'open-mmlab://', 'openmmlab://', 'mmcls://', r'(\S+\:)?s3://',
        r'(\S+\:)?petrel://'
    }
    return type(current)((prefix, _loader if prefix in ours else loader)
                         for prefix, loader in current.items())


@contextmanager
def safe_loading():
    """Inside the block, everything that reads checkpoints through
    mmengine's ``CheckpointLoader`` (``load_from``, ``Pretrained`` init of
    any module, ``mmengine.runner.load_checkpoint``, inferencers, mmpretrain's
    ``get_model``) uses :func:`read_checkpoint`."""
    saved = CheckpointLoader._schemes
    CheckpointLoader._schemes = _safe_schemes(saved)
    try:
        yield
    finally:
        CheckpointLoader._schemes = saved


def enable_safe_loading() -> None:
    """Make mmengine read checkpoints through :func:`read_checkpoint` for
    the rest of the process, and write them atomically (see
    :mod:`.writing`): the one call for your own scripts. SMT-MM's tools and
    runner do not need it."""
    CheckpointLoader._schemes = _safe_schemes(CheckpointLoader._schemes)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
