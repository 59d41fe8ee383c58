# Copyright (c) SMT-MM contributors. All rights reserved.
"""A reading budget: a checkpoint may not make us allocate much more memory
than the bytes it really holds.

A weights-only unpickler still does what the file says, and a few of its
legitimate instructions allocate at a size the file only declares:

* a zip record compressed with deflate expands on reading (``torch.save``
  always stores records uncompressed, so none is accepted);
* ``bytearray(n)``, which torch's own allow-list admits, allocates ``n``
  bytes from an integer in the pickle (no checkpoint needs it);
* the pre-1.6 pickle format allocates each storage at its declared size
  before reading it (only the zip format is read);
* a tensor is a view (size, stride, offset) of a storage: a stride-0 view
  of a few bytes can claim billions of elements, which any computation on
  it (the finiteness check, a copy into a model) then expands.

:func:`check_container` runs before unpickling, :func:`check_tensors`
right after it and before anything computes on the tensors.
"""
import io
import pickletools
import zipfile
from typing import Any, BinaryIO, Dict, Tuple

import torch

from smt_mm.errors import CorruptCheckpointError, UnsafeCheckpointError

# A real data.pkl is a few hundred KB; reading more for the scan is waste.
_MAX_PICKLE_BYTES = 256 << 20
# Globals that allocate at a size the file declares.
_REFUSED_GLOBALS = frozenset({'builtins bytearray', '__builtin__ bytearray'})
# Tensors may share storages (tied weights, views), but their elements
# together may not claim more than this many times the stored bytes.
_SHARED_FACTOR = 4
_SHARED_SLACK = 64 << 20
_ZIP_MAGIC = b'PK\x03\x04'


def _unsafe(filename: str, what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'refused to load checkpoint {filename} for safety: {what}')


def check_container(source: BinaryIO, filename: str) -> None:
    """Refuse a file whose reading would allocate beyond its size.

    Args:
        source: The open, seekable file; left at position 0.
        filename (str): Names the file in errors.

    Raises:
        UnsafeCheckpointError: Compressed records, ``bytearray`` in the
            pickle, or the legacy (non-zip) format.
        CorruptCheckpointError: Not a PyTorch checkpoint, or a damaged zip.
    """
    head = source.read(4)
    source.seek(0)
    # The format is what the file starts with: zipfile would also accept a
    # legacy pickle with an archive appended (it reads from the end).
    if head != _ZIP_MAGIC or not zipfile.is_zipfile(source):
        source.seek(0)
        if head[:1] == b'\x80':  # a pickle protocol opcode
            raise _unsafe(
                filename, 'it is a bare pickle or in the legacy (pre-1.6) '
                'PyTorch format, whose storages are allocated at sizes the '
                'file declares; only the zip format of torch.save is read '
                '(re-save a file you trust with torch.save)')
        detail = 'a damaged zip archive' if head == _ZIP_MAGIC \
            else 'not a zip archive'
        raise CorruptCheckpointError(
            f'cannot read checkpoint {filename}: the file is truncated or '
            f'not a PyTorch checkpoint ({detail})')
    source.seek(0)
    try:
        with zipfile.ZipFile(source) as archive:
            _check_archive(archive, filename)
    except zipfile.BadZipFile as err:
        raise CorruptCheckpointError(
            f'cannot read checkpoint {filename}: the file is truncated or '
            f'not a PyTorch checkpoint ({err})') from None
    finally:
        source.seek(0)


def _check_archive(archive: zipfile.ZipFile, filename: str) -> None:
    pickles = []
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            raise _unsafe(
                filename, f'record {info.filename} is compressed '
                '(torch.save stores records uncompressed; a compressed '
                'record can expand to far more memory than the file holds)')
        if info.filename.endswith('.pkl'):
            pickles.append(info)
    for info in pickles:
        if info.file_size > _MAX_PICKLE_BYTES:
            raise _unsafe(
                filename, f'record {info.filename} is {info.file_size} '
                f'bytes (at most {_MAX_PICKLE_BYTES} are read)')
        _scan_pickle(archive.read(info), f'{filename}:{info.filename}')


def _scan_pickle(data: bytes, name: str) -> None:
    """Refuse the globals that allocate at a declared size. torch's
    weights-only unpickler knows ``GLOBAL`` only (no ``STACK_GLOBAL``), so
    listing ``GLOBAL`` instructions finds every global it would use."""
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name == 'GLOBAL' and arg in _REFUSED_GLOBALS:
                raise _unsafe(
                    name.split(':')[0], f'GLOBAL {arg.replace(" ", ".")} '
                    'allocates memory at a size the file declares')
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # pickletools raises ValueError and others
        raise CorruptCheckpointError(
            f'cannot read checkpoint {name.split(":")[0]}: the file is '
            f'truncated or not a PyTorch checkpoint (its pickle: '
            f'{str(err)[:120]})') from None


def check_tensors(obj: Any, filename: str) -> None:
    """Refuse tensors that claim more elements than their storage holds,
    and kinds of tensor a checkpoint of weights never needs (sparse, meta,
    quantized, nested, subclasses).

    Raises:
        UnsafeCheckpointError: Naming the first such tensor.
    """
    storages: Dict[Tuple[int, int], int] = {}
    claimed = 0
    for path, tensor in _tensors(obj, '', set()):
        _check_kind(tensor, path, filename)
        storage = tensor.untyped_storage()
        size = tensor.numel() * tensor.element_size()
        if size > storage.nbytes():
            raise _unsafe(
                filename, f'tensor {path or "<root>"} claims {size} bytes '
                f'as a view of a {storage.nbytes()}-byte storage')
        storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        claimed += size
    stored = sum(storages.values())
    if claimed > _SHARED_FACTOR * stored + _SHARED_SLACK:
        raise _unsafe(
            filename, f'its tensors claim {claimed} bytes as views of '
            f'{stored} stored bytes')


def _check_kind(tensor: torch.Tensor, path: str, filename: str) -> None:
    kind = None
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        kind = f'a {type(tensor).__name__} subclass'
    elif tensor.layout != torch.strided:
        kind = f'a {tensor.layout} tensor'
    elif tensor.is_meta:
        kind = 'a meta tensor (no data)'
    elif tensor.is_quantized:
        kind = 'a quantized tensor'
    elif tensor.is_nested:
        kind = 'a nested tensor'
    if kind:
        raise _unsafe(
            filename, f'{path or "<root>"} is {kind}; a checkpoint of '
            'weights holds dense tensors only')


def _tensors(obj: Any, path: str, seen: set):
    """(key path, tensor) pairs; containers are walked once each, however
    often the file refers to them (``[x, x]`` nested 60 deep would
    otherwise be 2**60 visits), and their depth was bounded when the file
    was read."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f'{path}.{key}' if path else str(key),
                                seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f'{path}[{i}]', seen)
    elif type(obj).__name__ == 'HistoryBuffer':
        yield from _tensors(vars(obj), path, seen)
