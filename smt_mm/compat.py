# Copyright (c) SMT-MM contributors. All rights reserved.
"""The one place where SMT-MM adapts its 2023 stack to modern torch.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default. The
checkpoints that mmengine 0.10.7 itself writes hold a message hub
(``HistoryBuffer`` objects) and numpy scalars/arrays, which that safe loader
rejects, so ``--resume`` and ``load_from`` fail. Instead of switching safe
loading off, the few plain-data types involved are allow-listed. Nothing here
lets a checkpoint run code: numpy arrays and scalars are rebuilt from bytes
and a ``HistoryBuffer`` is restored from its attribute dict.

``apply()`` runs once when ``smt_mm`` is imported.
"""
import numpy as np
import torch

_applied = False


def _numpy_safe_globals():
    """numpy callables/types needed to unpickle arrays, dtypes and
    scalars, under both the numpy 1.x and 2.x module names."""
    found = [np.ndarray, np.dtype]
    # dtype classes such as numpy.dtypes.Float64DType
    found += sorted({type(np.dtype(code)) for code in np.typecodes['All']},
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


def safe_checkpoint_globals():
    """The globals allow-listed for ``torch.load(weights_only=True)``."""
    from mmengine.logging import HistoryBuffer
    return _numpy_safe_globals() + [HistoryBuffer]


def apply():
    """Allow-list the safe types of mmengine checkpoints (idempotent)."""
    global _applied
    if _applied:
        return
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 loads them anyway
        add_safe_globals(safe_checkpoint_globals())
    _applied = True
