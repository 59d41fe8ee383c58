# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT-MM: the Scale-Aware Modulation Transformer for OpenMMLab 2.x.

Importing this package only registers: the ``SMT`` backbone in mmengine's
root ``MODELS`` registry (so ``dict(type='SMT')`` builds under the mmdet,
mmseg and mmpretrain scopes), the ``SMTRunner``, the ``RNGReseedHook`` and
``BF16AmpOptimWrapper``, an atomic file backend under its own name, and
``smt_mm::`` as a config package. How mmengine and torch load or write files
for other code is left unchanged; see :mod:`smt_mm.checkpoint` for the safe
loading our runner and tools use, and ``enable_safe_loading()`` for scripts.
"""
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .utils import model_hub  # noqa: F401 (our models in mmpretrain)
from .utils.package import register_config_package
from .version import __version__

register_config_package()

__all__ = ['__version__']
