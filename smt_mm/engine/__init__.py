# Copyright (c) SMT-MM contributors. All rights reserved.
from .hooks import RNGReseedHook
from .optim_wrappers import BF16AmpOptimWrapper

__all__ = ['RNGReseedHook', 'BF16AmpOptimWrapper']
