# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT-MM: the Scale-Aware Modulation Transformer for OpenMMLab 2.x.

Importing this package only registers: the ``SMT`` backbone in mmengine's
root ``MODELS`` registry (so ``dict(type='SMT')`` builds under the mmdet,
mmseg and mmpretrain scopes), the ``SMTRunner``, the ``RNGReseedHook``,
``BF16AmpOptimWrapper`` and ``SMTLayerDecayOptimizerConstructor``, an
atomic file backend under its own name, and ``smt_mm::`` as a config
package. How mmengine and torch load or write files for other code is left
unchanged; see :mod:`smt_mm.checkpoint` for the safe loading our runner and
tools use, and ``enable_safe_loading()`` for scripts.
"""
import os
import warnings

from .config_scheme import register_config_package
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .models import hub  # noqa: F401 (our models in mmpretrain)
from .version import __version__

register_config_package()

if os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '0') not in ('', '0'):
    # Not ours to switch off; the user should know what it means.
    warnings.warn(
        'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: torch.load in other '
        "libraries' code (mmengine's load_checkpoint behind mmpretrain's "
        'get_model, the inferencers, a plain Runner) unpickles checkpoint '
        "files fully and can run code from them. SMT-MM's runner and tools "
        'ignore it; in your own scripts call '
        'smt_mm.checkpoint.enable_safe_loading() to route mmengine through '
        'the safe reader.',
        stacklevel=2)


def __getattr__(name):
    """``smt_mm.utils``, the deprecated aliases of moved modules, without
    importing it first (``import smt_mm`` used to)."""
    if name == 'utils':
        import importlib
        return importlib.import_module('smt_mm.utils')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['__version__']
