# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT-MM: the Scale-Aware Modulation Transformer for OpenMMLab 2.x.

Importing this package registers the ``SMT`` backbone in mmengine's root
``MODELS`` registry (so ``dict(type='SMT')`` builds under the mmdet, mmseg
and mmpretrain scopes) and the ``RNGReseedHook``, applies the torch
compatibility fix of :mod:`smt_mm.compat` and the safe checkpoint reading /
atomic writing of :mod:`smt_mm.safe_io`, and lets configs inherit ours as
``smt_mm::det/...``.
"""
from . import compat, safe_io
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .utils.package import register_config_package
from .version import __version__

compat.apply()
safe_io.apply()
register_config_package()

__all__ = ['__version__']
