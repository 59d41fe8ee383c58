# Copyright (c) SMT-MM contributors. All rights reserved.
"""What the weights-only unpickler may rebuild besides tensors.

mmengine 0.10.7 checkpoints hold a message hub (``HistoryBuffer`` objects)
and numpy arrays and scalars, which torch's ``weights_only`` loader refuses
unless their constructors are allow-listed. Allow-listing numpy's own
``dtype`` / ``_reconstruct`` / ``scalar`` is not safe: a pickle can build a
dtype with object fields (or set its flags) and then reinterpret raw bytes
as object pointers, which crashes the process. So the names a pickle uses
are bound to stand-ins here that accept plain numeric data only:

* ``numpy.dtype`` -> :class:`_DType`: a boolean, integer, float or complex
  type code, and a pickled state without fields, sub-arrays or flags;
* ``numpy.ndarray`` + ``_reconstruct`` -> :class:`_Array`: an array of such
  a dtype whose bytes match its shape exactly;
* ``scalar`` -> :func:`_scalar`: one value of such a dtype;
* ``getattr`` -> :func:`_history_buffer_getattr`: only the statistics
  methods a ``HistoryBuffer`` pickles.

Arrays are rebuilt in place by the unpickler, so :func:`materialize` swaps
the :class:`_Array` holders for real arrays after loading. The list is used
only inside :func:`torch.serialization.safe_globals` while SMT-MM reads a
file: nothing is added to torch's process-wide allow-list.
"""
import pickle
from typing import Any, Dict, List

import numpy as np

# Statistics every HistoryBuffer registers (its class dict fills lazily).
_DEFAULT_STATISTICS = frozenset({'min', 'max', 'mean', 'current'})
# Containers nested deeper than this are refused: checkpoints nest a few
# levels, and every walk over them recurses.
MAX_DEPTH = 100
# numpy type codes of plain numeric data: bool, ints, floats, complex
_NUMERIC_KINDS = frozenset('biufc')
_NUMPY_MODULES = ('numpy._core.multiarray', 'numpy.core.multiarray')


def _refuse(what: str):
    raise pickle.UnpicklingError(f'refusing {what} in a checkpoint')


class _DType:
    """A numpy dtype named by a plain numeric type code."""

    def __init__(self, code, align=False, copy=True):
        if not isinstance(code, str):
            _refuse(f'numpy dtype {code!r}')
        try:
            dtype = np.dtype(code)
        except TypeError:
            _refuse(f'numpy dtype {code!r}')
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
            _refuse(f'numpy dtype {code!r} (only bool, int, float, '
                    'complex are read)')
        self.dtype = dtype

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, elsize, alignment,
        # flags): anything beyond the byte order would change the layout.
        if (not isinstance(state, tuple) or len(state) < 8
                or state[1] not in ('<', '>', '|', '=')
                or state[2:5] != (None, None, None)
                or state[5:8] != (-1, -1, 0)):
            _refuse(f'numpy dtype state {state!r}')
        if state[1] in ('<', '>'):
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """Holder of a numpy array rebuilt from its shape, dtype and bytes."""

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            _refuse('a numpy array state')
        _, shape, dtype, fortran, data = state
        if (not isinstance(dtype, _DType) or not isinstance(shape, tuple)
                or not all(isinstance(n, int) and n >= 0 for n in shape)
                or not isinstance(data, bytes)):
            _refuse('a numpy array that is not plain numeric data')
        if len(data) != dtype.dtype.itemsize * int(np.prod(shape)):
            _refuse('a numpy array whose bytes do not match its shape')
        flat = np.frombuffer(data, dtype=dtype.dtype).copy()
        self.array = flat.reshape(shape, order='F' if fortran else 'C')


def _reconstruct(cls, shape, dtype_code):
    if cls is not _Array:
        _refuse(f'numpy _reconstruct of {cls!r}')
    return _Array()


def _scalar(dtype, data=None):
    if not isinstance(dtype, _DType) or not isinstance(data, bytes) \
            or len(data) != dtype.dtype.itemsize:
        _refuse('a numpy scalar that is not plain numeric data')
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _history_buffer_getattr(owner, name):
    """``getattr`` limited to the statistics methods of ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer
    allowed = _DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    _refuse(f'getattr({getattr(owner, "__name__", owner)!r}, {name!r})')


def safe_globals() -> List:
    """``(object, pickled name)`` pairs for
    :func:`torch.serialization.safe_globals`."""
    from mmengine.logging import HistoryBuffer
    pairs = [(_DType, 'numpy.dtype'), (_Array, 'numpy.ndarray'), HistoryBuffer,
             (_history_buffer_getattr, '__builtin__.getattr'),
             (_history_buffer_getattr, 'builtins.getattr')]
    for module in _NUMPY_MODULES:  # numpy 2.x and 1.x spellings
        pairs += [(_reconstruct, f'{module}._reconstruct'),
                  (_scalar, f'{module}.scalar')]
    return pairs


def materialize(obj: Any, _seen: Dict[int, Any] = None, _depth=0) -> Any:
    """``obj`` with every :class:`_Array` / :class:`_DType` holder replaced
    by the real array / dtype (containers and ``HistoryBuffer`` attributes
    are walked; nesting deeper than ``MAX_DEPTH`` is refused)."""
    seen = {} if _seen is None else _seen
    if _depth > MAX_DEPTH:
        _refuse(f'containers nested more than {MAX_DEPTH} levels deep')
    depth = _depth + 1
    key = id(obj)
    if key in seen:
        return seen[key]
    if isinstance(obj, _Array):
        result = obj.array
    elif isinstance(obj, _DType):
        result = obj.dtype
    elif isinstance(obj, dict):
        seen[key] = obj
        for k in list(obj):
            obj[k] = materialize(obj[k], seen, depth)
        result = obj
    elif isinstance(obj, list):
        seen[key] = obj
        obj[:] = [materialize(v, seen, depth) for v in obj]
        result = obj
    elif isinstance(obj, tuple):
        items = [materialize(v, seen, depth) for v in obj]
        result = type(obj)(*items) if hasattr(obj, '_fields') \
            else type(obj)(items)
    elif isinstance(obj, (set, frozenset)):
        result = type(obj)(materialize(v, seen, depth) for v in obj)
    elif type(obj).__name__ == 'HistoryBuffer':
        seen[key] = obj
        for k, v in vars(obj).items():
            setattr(obj, k, materialize(v, seen, depth))
        result = obj
    else:
        result = obj
    seen[key] = result
    return result
