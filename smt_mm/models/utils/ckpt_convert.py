# Copyright (c) SMT-MM contributors. All rights reserved.
"""Key conversion from the official SMT release files to this toolkit.

Official files keep a flat state dict under ``model`` with keys such as
``patch_embed1.conv.0.weight`` or ``block3.1.attn.kv.weight``; the detection
and segmentation copies of the official code spell the MSA depthwise conv
``attn.dw_conv`` instead of ``attn.local_conv``. Both are accepted.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

# Whole-key rules: (pattern, replacement); ``{s}`` is the 0-based stage.
_STAGE_RULES = (
    (r'patch_embed1\.conv\.0\.(.+)',
     'stages.{s}.patch_embed.stem.conv.{rest}'),
    (r'patch_embed1\.conv\.1\.(.+)', 'stages.{s}.patch_embed.stem.bn.{rest}'),
    (r'patch_embed1\.conv\.3\.(.+)',
     'stages.{s}.patch_embed.projection.{rest}'),
    (r'patch_embed\d+\.proj\.(.+)',
     'stages.{s}.patch_embed.projection.{rest}'),
    (r'patch_embed\d+\.norm\.(.+)', 'stages.{s}.patch_embed.norm.{rest}'),
    (r'norm\d+\.(.+)', 'stages.{s}.norm.{rest}'),
)
# Renames inside a block (applied to the part after ``block{i}.{j}.``).
_BLOCK_RULES = (
    (re.compile(r'^attn\.local_conv_(\d+)\.'),
     lambda m: f'attn.local_convs.{int(m.group(1)) - 1}.'),
    (re.compile(r'^attn\.dw_conv\.'), lambda m: 'attn.local_conv.'),
    (re.compile(r'^mlp\.dwconv\.dwconv\.'), lambda m: 'ffn.dwconv.'),
    (re.compile(r'^mlp\.'), lambda m: 'ffn.'),
    (re.compile(r'^gamma_(\d)$'), lambda m: f'gamma{m.group(1)}'),
)
_OFFICIAL_KEY = re.compile(r'^(patch_embed|block|norm)(\d+)\.')


def is_official_state_dict(state_dict: Dict) -> bool:
    """Whether ``state_dict`` uses the official SMT key names."""
    return any(k.startswith(('patch_embed1.', 'block1.')) for k in state_dict)


def convert_official_key(key: str) -> Optional[str]:
    """Our name of an official backbone key; None for the classifier head.

    Keys that are not official backbone keys are returned unchanged, so a
    strict load reports them as unexpected.
    """
    if key.startswith('head.'):
        return None
    match = _OFFICIAL_KEY.match(key)
    if match is None:
        return key
    stage = int(match.group(2)) - 1
    if match.group(1) == 'block':
        block_match = re.match(r'block\d+\.(\d+)\.(.+)', key)
        if block_match is None:
            return key
        index, rest = block_match.groups()
        for pattern, replace in _BLOCK_RULES:
            rest = pattern.sub(replace, rest, count=1)
        return f'stages.{stage}.blocks.{index}.{rest}'
    for pattern, template in _STAGE_RULES:
        rule_match = re.fullmatch(pattern, key)
        if rule_match:
            return template.format(s=stage, rest=rule_match.group(1))
    return key


def convert_official_state_dict(
        state_dict: Dict) -> Tuple[OrderedDict, OrderedDict]:
    """Split an official state dict into (backbone, head) state dicts.

    The backbone dict uses this toolkit's key names; the head dict keeps the
    official ``head.weight`` / ``head.bias`` keys without the ``head.``.
    """
    backbone, head = OrderedDict(), OrderedDict()
    for key, value in state_dict.items():
        new_key = convert_official_key(key)
        if new_key is None:
            head[key[len('head.'):]] = value
        else:
            backbone[new_key] = value
    return backbone, head


def official_to_classifier(state_dict: Dict,
                           backbone: str = 'backbone',
                           head: str = 'head.fc') -> OrderedDict:
    """An official release state dict in the key names of an mmpretrain
    ``ImageClassifier`` with SMT backbone, global pooling and
    ``LinearClsHead`` (the layout of ``configs/cls``)."""
    backbone_sd, head_sd = convert_official_state_dict(state_dict)
    result = OrderedDict(
        (f'{backbone}.{k}', v) for k, v in backbone_sd.items())
    result.update((f'{head}.{k}', v) for k, v in head_sd.items())
    return result
