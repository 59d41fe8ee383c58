# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checkpoints that any ``torch.load(weights_only=True)`` reads.

mmengine 0.10.7 pickles its message hub's ``HistoryBuffer`` objects, numpy
arrays and numpy scalars into every checkpoint. torch's weights-only loader
(the default of ``torch.load`` since torch 2.6) refuses them, so tools that
load with mmengine's ``load_checkpoint`` or plain ``torch.load`` (mmpretrain's
``init_model``, ``vis_cam``, the inferencers) fail on such files with an
``UnpicklingError``. Allow-listing those classes in torch for the whole
process would let every file use them, so instead :class:`SMTRunner` writes
them as plain data:

* a ``HistoryBuffer`` becomes ``{TAG: 'HistoryBuffer', 'max_length': int,
  'log_history': array, 'count_history': array}``;
* a numpy array becomes ``{TAG: 'ndarray', 'dtype': str, 'data': tensor}``
  (the same bytes in a tensor; the dtype string keeps byte order and
  unsigned types exact);
* a numpy scalar becomes ``{TAG: 'numpy_scalar', 'dtype': str, 'data':
  0-dim tensor}``; a ``deque`` becomes ``{TAG: 'deque', 'items': list,
  'maxlen': int or None}``.

:func:`from_plain` turns these back into the original objects (bit-exact),
which :class:`SMTRunner` does whenever it loads a checkpoint, so ``--resume``
restores the message hub as before. Everything else in a checkpoint
(tensors, numbers, strings, containers, ``Counter``) is plain already.
mmengine's own ``Runner`` resuming such a file skips the log buffers with a
warning (their history only feeds smoothed log values).
"""
from collections import deque
from contextlib import contextmanager
from typing import Any, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

TAG = '__smt_mm_plain__'
# numpy kinds stored as tensors: bool, signed / unsigned int, float, complex
_NUMERIC_KINDS = frozenset('biufc')


def to_plain(obj: Any) -> Any:
    """A copy of ``obj`` in which message hub buffers, numpy data and
    deques are replaced by tagged plain dicts (see the module doc);
    containers are rebuilt, tensors and other leaves are shared."""
    if isinstance(obj, HistoryBuffer):
        return {
            TAG: 'HistoryBuffer',
            'max_length': int(obj.max_length),
            'log_history': to_plain(obj._log_history),
            'count_history': to_plain(obj._count_history)
        }
    if isinstance(obj, np.ndarray) and obj.dtype.kind in _NUMERIC_KINDS:
        return {TAG: 'ndarray', 'dtype': obj.dtype.str, 'data': _tensor(obj)}
    if isinstance(obj, np.generic) and obj.dtype.kind in _NUMERIC_KINDS:
        return {
            TAG: 'numpy_scalar',
            'dtype': obj.dtype.str,
            'data': _tensor(np.asarray(obj))
        }
    if isinstance(obj, deque):
        return {
            TAG: 'deque',
            'items': [to_plain(v) for v in obj],
            'maxlen': obj.maxlen
        }
    return _map_container(obj, to_plain)


def from_plain(obj: Any, _memo: Optional[dict] = None) -> Any:
    """The inverse of :func:`to_plain`: tagged dicts become message hub
    buffers, numpy arrays and scalars, deques again; anything else is
    returned as it is (checkpoints written before stay loadable).

    Each container is converted once however often the file refers to it
    (a file can nest ``[x, x]`` to make a naive walk exponential).
    """
    memo = {} if _memo is None else _memo
    if id(obj) in memo:
        return memo[id(obj)]
    result = _from_plain(obj, lambda value: from_plain(value, memo))
    memo[id(obj)] = result
    return result


def _from_plain(obj: Any, convert) -> Any:
    if isinstance(obj, dict):
        kind = obj.get(TAG)
        if kind == 'HistoryBuffer':
            buffer = HistoryBuffer(max_length=_max_length(obj['max_length']))
            buffer._log_history = convert(obj['log_history'])
            buffer._count_history = convert(obj['count_history'])
            return buffer
        if kind == 'ndarray':
            return _array(obj)
        if kind == 'numpy_scalar':
            return _array(obj)[()]
        if kind == 'deque':
            return deque((convert(v) for v in obj['items']),
                         maxlen=_max_length(obj['maxlen'], optional=True))
    return _map_container(obj, convert)


def _max_length(value, optional=False):
    if optional and value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f'max_length {value!r} is not a positive integer')
    return value


def _map_container(obj: Any, fn) -> Any:
    """``obj`` with ``fn`` applied to the values of a dict, list or tuple;
    ``obj`` itself (attributes such as a state dict's ``_metadata``
    included) when no value changes, a new container of its type
    otherwise."""
    if isinstance(obj, dict):
        items = {k: fn(v) for k, v in obj.items()}
        if all(items[k] is v for k, v in obj.items()):
            return obj
        rebuilt = items if type(obj) is dict else type(obj)()
        if rebuilt is not items:
            rebuilt.update(items)
            rebuilt.__dict__.update(getattr(obj, '__dict__', {}))
        return rebuilt
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        values = [fn(v) for v in obj]
        if all(new is old for new, old in zip(values, obj)):
            return obj
        return values if isinstance(obj, list) else type(obj)(values)
    return obj


def _tensor(array: np.ndarray) -> torch.Tensor:
    """The bytes of ``array`` as a tensor (native byte order, C order)."""
    native = array.astype(array.dtype.newbyteorder('='), copy=False)
    return torch.from_numpy(np.array(native, order='C', copy=True))


def _array(entry: dict) -> np.ndarray:
    """The numpy array of a stored entry; only the plain numeric dtypes
    :func:`to_plain` writes are rebuilt (a dtype such as ``<U100000`` would
    turn a few bytes of tensor into gigabytes of strings)."""
    data = entry['data']
    if not isinstance(data, torch.Tensor):
        raise TypeError(f'{TAG} {entry[TAG]} entry without tensor data')
    code = entry['dtype']
    dtype = np.dtype(code) if isinstance(code, str) and len(code) < 8 \
        else None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS or \
            dtype.itemsize > 16:
        raise TypeError(f'{TAG} {entry[TAG]} entry of dtype {code!r:.20}, '
                        'not a plain numeric one')
    return data.numpy().astype(dtype, copy=True)


class PlainCheckpointHook(Hook):
    """Turns the checkpoint being saved into plain data (:func:`to_plain`),
    after every other hook's ``before_save_checkpoint``."""

    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        plain = to_plain(checkpoint)
        checkpoint.clear()
        checkpoint.update(plain)


@contextmanager
def plain_checkpoint_saving(runner):
    """While open, checkpoints that ``runner`` saves are plain data.

    The hook is added at the end of the runner's hook list (lowest
    priority) and removed on exit, so the list is as before.
    """
    hook = PlainCheckpointHook()
    runner.register_hook(hook, priority='LOWEST')
    try:
        yield
    finally:
        runner._hooks.remove(hook)
