# Copyright (c) SMT-MM contributors. All rights reserved.
"""Turn an official SMT release file into a checkpoint of this toolkit.

The result is what an mmpretrain ``ImageClassifier`` with an ``SMT``
backbone, a ``GlobalAveragePooling`` neck and a ``LinearClsHead`` holds:
``backbone.*`` and ``head.fc.{weight,bias}``. The backbone part is checked
strictly against the architecture, so a file of another variant is refused
with the first mismatching keys and shapes.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.registry import MODELS

from smt_mm.checkpoint import describe_mismatch
from smt_mm.errors import CheckpointMismatchError, SMTConfigError
from .ckpt_convert import convert_official_state_dict, is_official_state_dict

PRESETS = ('tiny', 'small', 'base', 'large')


def official_state_dict(checkpoint: Dict, source: str = 'file') -> Dict:
    """The official state dict of a loaded release file (under ``model``)."""
    state_dict = checkpoint.get('model', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or \
            not is_official_state_dict(state_dict):
        raise CheckpointMismatchError(
            f'{source} is not an official SMT release file: expected a state '
            "dict under 'model' with keys such as 'patch_embed1.conv.0.weight'"
            ' and \'block1.0.attn.v.weight\'')
    return state_dict


def backbone_shapes(arch: Union[str, Dict]) -> Dict[str, torch.Tensor]:
    """The state dict of an ``SMT(arch)`` without allocating its weights."""
    # through the registry: the backbone module imports this package
    with torch.device('meta'):
        return MODELS.build(dict(type='SMT', arch=arch)).state_dict()


def summarize_arch(backbone: Dict) -> str:
    """Stage widths and depths read off converted backbone weights."""
    dims, depths = [], []
    for stage in range(4):
        norm = backbone.get(f'stages.{stage}.norm.weight')
        dims.append(None if norm is None else int(norm.shape[0]))
        prefix = f'stages.{stage}.blocks.'
        blocks = {
            k[len(prefix):].split('.')[0]
            for k in backbone if k.startswith(prefix)
        }
        depths.append(len(blocks))
    return f'embed_dims {dims}, depths {depths}'


def match_arch(backbone: Dict,
               arch: Optional[Union[str, Dict]] = None,
               source: str = 'file') -> Union[str, Dict]:
    """The architecture that ``backbone`` fits: ``arch`` when given (checked
    strictly), else the one preset it fits."""
    if arch is not None:
        problems = describe_mismatch(backbone_shapes(arch), backbone)
        if problems:
            raise CheckpointMismatchError(
                f'{source} ({summarize_arch(backbone)}) does not match SMT '
                f'arch {arch!r}: {problems}')
        return arch
    problems = {}
    for name in PRESETS:
        problems[name] = describe_mismatch(backbone_shapes(name), backbone)
        if not problems[name]:
            return name
    closest = problems['tiny']
    raise CheckpointMismatchError(
        f'{source} ({summarize_arch(backbone)}) fits none of the SMT presets '
        f'{list(PRESETS)}; name its architecture with an arch dict '
        f'(against tiny: {closest})')


def select_head_rows(head: Dict,
                     rows: Sequence[int],
                     source: str = 'file') -> Dict:
    """Keep the classifier rows ``rows`` (e.g. the ImageNet-1K classes of a
    22K head, in 1K order)."""
    num_classes = head['weight'].shape[0]
    bad = [r for r in rows if not 0 <= r < num_classes]
    if bad:
        raise SMTConfigError(f'{source}: head rows {bad[:5]} out of range '
                             f'for a {num_classes}-class head')
    index = torch.as_tensor(list(rows), dtype=torch.long)
    return {key: value[index] for key, value in head.items()}


def convert_official_checkpoint(
        checkpoint: Dict,
        arch: Optional[Union[str, Dict]] = None,
        head_rows: Optional[Sequence[int]] = None,
        source: str = 'file') -> Tuple[OrderedDict, Dict]:
    """Convert a loaded official release file.

    Args:
        checkpoint (dict): What ``torch.load`` returned for the file.
        arch (str | dict, optional): The SMT arch the file must fit; found
            among the presets when None.
        head_rows (Sequence[int], optional): Classifier rows to keep.
        source (str): The file's name, for messages.

    Returns:
        tuple: The classifier state dict (``backbone.*``, ``head.fc.*``) and
        a meta dict with the arch and the number of classes (0 when the file
        has no head).
    """
    backbone, head = convert_official_state_dict(
        official_state_dict(checkpoint, source))
    arch = match_arch(backbone, arch, source)
    unknown = sorted(set(head) - {'weight', 'bias'})
    if unknown:
        raise CheckpointMismatchError(
            f'{source}: unexpected head keys {["head." + k for k in unknown]}')
    if head and head_rows is not None:
        head = select_head_rows(head, head_rows, source)
    state_dict = OrderedDict(
        (f'backbone.{key}', value) for key, value in backbone.items())
    state_dict.update((f'head.fc.{key}', value) for key, value in head.items())
    num_classes = head['weight'].shape[0] if 'weight' in head else 0
    return state_dict, dict(arch=arch, num_classes=num_classes)
