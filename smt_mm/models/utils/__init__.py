from .ckpt_convert import (convert_official_key, convert_official_state_dict,
                           is_official_state_dict, official_to_classifier)
from .official import convert_official_checkpoint, match_arch
from .weights import (apply_checkpoint, check_checkpoint_parts,
                      extract_backbone_state_dict, load_model_weights,
                      load_pretrained_backbone, model_state_dict)

__all__ = [
    'extract_backbone_state_dict', 'load_pretrained_backbone',
    'load_model_weights', 'apply_checkpoint', 'check_checkpoint_parts',
    'model_state_dict', 'convert_official_key', 'convert_official_state_dict',
    'is_official_state_dict', 'official_to_classifier',
    'convert_official_checkpoint', 'match_arch'
]
