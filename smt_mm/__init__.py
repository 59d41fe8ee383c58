# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT-MM: the Scale-Aware Modulation Transformer for OpenMMLab 2.x.

Importing this package registers the ``SMT`` backbone in mmengine's root
``MODELS`` registry (so ``dict(type='SMT')`` builds under the mmdet, mmseg
and mmpretrain scopes) and applies the torch compatibility fix of
:mod:`smt_mm.compat`.
"""
from . import compat
from .models import *  # noqa: F401,F403
from .version import __version__

compat.apply()

__all__ = ['__version__']
