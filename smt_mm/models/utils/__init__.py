from .checkpoint import (CheckpointMismatchError, extract_backbone_state_dict,
                         load_pretrained_backbone, load_state_dict_strictly)
from .ckpt_convert import (convert_official_key, convert_official_state_dict,
                           is_official_state_dict)
from .official import convert_official_checkpoint, match_arch

__all__ = [
    'CheckpointMismatchError', 'extract_backbone_state_dict',
    'load_pretrained_backbone', 'load_state_dict_strictly',
    'convert_official_key', 'convert_official_state_dict',
    'is_official_state_dict', 'convert_official_checkpoint', 'match_arch'
]
