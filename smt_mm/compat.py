# Copyright (c) SMT-MM contributors. All rights reserved.
"""The one place where SMT-MM adapts its 2023 stack to modern torch.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default. The
checkpoints that mmengine 0.10.7 itself writes hold a message hub
(``HistoryBuffer`` objects) and numpy scalars/arrays, which that safe loader
rejects, so ``--resume`` and ``load_from`` fail. Instead of switching safe
loading off, the few plain-data types involved are allow-listed. Nothing here
lets a checkpoint run code: numpy arrays and scalars are rebuilt from bytes
and a ``HistoryBuffer`` is restored from its attribute dict. A
``HistoryBuffer`` also pickles its statistics methods as
``getattr(HistoryBuffer, 'mean')``; the builtin ``getattr`` would reach any
attribute, so the name is bound to :func:`_history_buffer_getattr`, which
resolves those methods and nothing else.

``apply()`` runs once when ``smt_mm`` is imported.
"""
import pickle

import numpy as np
import torch

_applied = False
# Statistics every HistoryBuffer registers (its class dict fills lazily).
_DEFAULT_STATISTICS = frozenset({'min', 'max', 'mean', 'current'})


def _numpy_safe_globals():
    """numpy callables/types needed to unpickle arrays, dtypes and
    scalars, under both the numpy 1.x and 2.x module names."""
    found = [np.ndarray, np.dtype]
    # dtype classes such as numpy.dtypes.Float64DType
    found += sorted({type(np.dtype(code))
                     for code in np.typecodes['All']},
                    key=lambda t: t.__name__)
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct'])
        except ImportError:
            continue
        for name in ('_reconstruct', 'scalar'):
            obj = getattr(module, name, None)
            if obj is not None:
                # Pickles name the module they were written with.
                found.append((obj, f'{module_name}.{name}'))
    return found


def _history_buffer_getattr(owner, name):
    """``getattr`` limited to the statistics methods of ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer
    allowed = _DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({getattr(owner, "__name__", owner)!r}, {name!r}) '
        'in a checkpoint')


def safe_checkpoint_globals():
    """The globals allow-listed for ``torch.load(weights_only=True)``."""
    from mmengine.logging import HistoryBuffer
    return _numpy_safe_globals() + [
        HistoryBuffer,
        (_history_buffer_getattr, '__builtin__.getattr'),
        (_history_buffer_getattr, 'builtins.getattr'),
    ]


def apply():
    """Allow-list the safe types of mmengine checkpoints (idempotent)."""
    global _applied
    if _applied:
        return
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 loads them anyway
        add_safe_globals(safe_checkpoint_globals())
    _applied = True
