from .checkpoint import (UNSAFE_LOAD_ENV, CheckpointLoadError,
                         CheckpointMismatchError, UnsafeCheckpointError,
                         extract_backbone_state_dict, load_pretrained_backbone,
                         load_state_dict_strictly, safe_load)
from .ckpt_convert import (convert_official_key, convert_official_state_dict,
                           is_official_state_dict)
from .official import convert_official_checkpoint, match_arch

__all__ = [
    'UNSAFE_LOAD_ENV', 'CheckpointLoadError', 'CheckpointMismatchError',
    'UnsafeCheckpointError', 'safe_load', 'extract_backbone_state_dict',
    'load_pretrained_backbone', 'load_state_dict_strictly',
    'convert_official_key', 'convert_official_state_dict',
    'is_official_state_dict', 'convert_official_checkpoint', 'match_arch'
]
