# Copyright (c) SMT-MM contributors. All rights reserved.
from .hooks import RNGReseedHook

__all__ = ['RNGReseedHook']
