# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT-MM: the Scale-Aware Modulation Transformer for OpenMMLab 2.x.

Importing this package registers the ``SMT`` backbone in mmengine's root
``MODELS`` registry (so ``dict(type='SMT')`` builds under the mmdet, mmseg
and mmpretrain scopes), applies the torch compatibility fix of
:mod:`smt_mm.compat` and lets configs inherit ours as ``smt_mm::det/...``.
"""
from . import compat
from .models import *  # noqa: F401,F403
from .utils.package import register_config_package
from .version import __version__

compat.apply()
register_config_package()

__all__ = ['__version__']
