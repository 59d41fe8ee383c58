# Copyright (c) SMT-MM contributors. All rights reserved.
"""Reading checkpoints safely, loading them strictly, writing them
atomically. Nothing here changes mmengine or torch on import."""
from .matching import check_finite, describe_mismatch, load_checked
from .reading import (UNSAFE_LOAD_ENV, download_checkpoint, drop_config_text,
                      enable_safe_loading, read_checkpoint, safe_load,
                      safe_loading)
from .writing import (ATOMIC_BACKEND, AtomicLocalBackend, complete_checkpoints,
                      is_complete_checkpoint, remove_stale_temporaries)

__all__ = [
    'UNSAFE_LOAD_ENV', 'read_checkpoint', 'safe_load', 'safe_loading',
    'enable_safe_loading', 'download_checkpoint', 'drop_config_text',
    'check_finite', 'describe_mismatch', 'load_checked', 'ATOMIC_BACKEND',
    'AtomicLocalBackend', 'complete_checkpoints', 'is_complete_checkpoint',
    'remove_stale_temporaries'
]
