# Copyright (c) SMT-MM contributors. All rights reserved.
"""Reading checkpoints safely, loading them strictly, writing them
atomically. Nothing here changes mmengine or torch on import."""
from .matching import (allow_partial_loading, check_finite, check_load_in_hook,
                       describe_mismatch, load_checked)
from .reading import (MAX_DOWNLOAD_ENV, UNSAFE_LOAD_ENV, display_name,
                      download_checkpoint, download_file, drop_config_text,
                      enable_safe_loading, read_checkpoint, redact_url,
                      redact_urls, safe_load, safe_loading)
from .writing import (ATOMIC_BACKEND, AtomicLocalBackend, complete_checkpoints,
                      is_complete_checkpoint, remove_stale_temporaries)

__all__ = [
    'UNSAFE_LOAD_ENV', 'MAX_DOWNLOAD_ENV', 'redact_url', 'redact_urls',
    'display_name', 'read_checkpoint', 'safe_load', 'safe_loading',
    'enable_safe_loading', 'download_checkpoint', 'download_file',
    'drop_config_text', 'check_finite', 'check_load_in_hook',
    'allow_partial_loading', 'describe_mismatch', 'load_checked',
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'complete_checkpoints',
    'is_complete_checkpoint', 'remove_stale_temporaries'
]
