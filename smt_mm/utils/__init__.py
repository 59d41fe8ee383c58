# Copyright (c) SMT-MM contributors. All rights reserved.
from smt_mm.models.utils.checkpoint import (CheckpointLoadError,
                                            UnsafeCheckpointError, safe_load)
from .launch import LaunchError

__all__ = ['LaunchError', 'safe_load', 'CheckpointLoadError',
           'UnsafeCheckpointError']
