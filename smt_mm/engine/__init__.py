# Copyright (c) SMT-MM contributors. All rights reserved.
from .hooks import RNGReseedHook
from .optim_constructors import SMTLayerDecayOptimizerConstructor
from .optim_wrappers import BF16AmpOptimWrapper
from .runner import SMTRunner

__all__ = [
    'RNGReseedHook', 'BF16AmpOptimWrapper', 'SMTRunner',
    'SMTLayerDecayOptimizerConstructor'
]
