# Copyright (c) SMT-MM contributors. All rights reserved.
"""Loading checkpoints into SMT models.

The backbone's ``init_cfg=dict(type='Pretrained', checkpoint=...)`` takes an
official release file (state dict under ``model``, official key names), an
mmengine checkpoint of this toolkit or a bare state dict, from a path or URL
(:func:`smt_mm.checkpoint.read_checkpoint`: safe, cached downloads), and
loads it strictly: only a classification head may be left out.
:func:`load_model_weights` loads a whole-model checkpoint (or a release file
into an SMT classifier) the same way, for the runner and the tools.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import MODELS

from smt_mm.checkpoint import (describe_mismatch, display_name, load_checked,
                               read_checkpoint)
from smt_mm.errors import CheckpointMismatchError
from .ckpt_convert import (convert_official_state_dict, is_official_state_dict,
                           official_to_classifier)


def _strip_prefix(state_dict: Dict, prefix: str) -> Dict:
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    return _renamed(
        state_dict, lambda k: k[len(prefix):]
        if k.startswith(prefix) else None)


def _renamed(state_dict: Dict, rename: Callable[[str], Optional[str]]) -> Dict:
    """``state_dict`` with its keys renamed by ``rename`` (None drops the
    key), and likewise the module names in its version metadata
    (``_metadata``, which :func:`upgrade_state_dict` reads)."""
    renamed = OrderedDict()
    for key, value in state_dict.items():
        new = rename(key)
        if new is not None:
            renamed[new] = value
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        renamed._metadata = OrderedDict()
        for name, meta in metadata.items():
            # a module name is its keys' prefix without the final dot
            new = rename(name + '.')
            if new is not None:
                renamed._metadata[new[:-1]] = meta
    return renamed


def upgrade_state_dict(model: nn.Module, state_dict: Dict) -> None:
    """Bring the parts of ``state_dict`` saved with an older layout of a
    versioned sub-module of ``model`` (SMT's ``_version``) to the current
    layout, in place, so that the strict check sees current key names.

    Each sub-module whose class has ``upgrade_state_dict`` (SMT) renames
    the keys under its name, as its ``_load_from_state_dict`` hook would;
    the metadata then records the current version, so that the hook does
    not run the steps again.

    Examples:
        >>> from smt_mm.models import SMT
        >>> model = SMT('tiny')
        >>> state_dict = model.state_dict()
        >>> upgrade_state_dict(model, state_dict)  # current: unchanged
    """
    metadata = getattr(state_dict, '_metadata', None)
    if not metadata:
        return
    for name, module in model.named_modules():
        upgrade = getattr(type(module), 'upgrade_state_dict', None)
        meta = metadata.get(name)
        if upgrade is None or not meta or 'version' not in meta:
            continue
        upgrade(state_dict, f'{name}.' if name else '', meta['version'])
        metadata[name] = dict(meta, version=type(module)._version)


def extract_backbone_state_dict(checkpoint: Dict,
                                prefix: Optional[str] = None,
                                source: str = 'checkpoint') -> Dict:
    """The backbone weights of a loaded checkpoint, in our key names.

    Accepts an official release file (state dict under ``model``, official
    key names; the classification head is dropped), an mmengine checkpoint
    of this toolkit (``state_dict`` with ``backbone.`` keys) or a bare state
    dict. ``prefix`` selects a sub-module explicitly (e.g. ``'backbone'``).
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'{source}: expected a dict checkpoint, got '
            f'{type(checkpoint).__name__}')
    state_dict = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            break
    if all(k.startswith('module.') for k in state_dict):
        state_dict = _strip_prefix(state_dict, 'module')
    if prefix is None and any(k.startswith('backbone.') for k in state_dict):
        prefix = 'backbone'
    if prefix:
        state_dict = _strip_prefix(state_dict, prefix)
        if not state_dict:
            raise CheckpointMismatchError(
                f'{source}: no weights under the prefix {prefix!r}')
    if is_official_state_dict(state_dict):
        state_dict, head = convert_official_state_dict(state_dict)
        if head:
            print_log(
                f'{source}: dropped the classification head '
                f'({", ".join("head." + k for k in head)})',
                logger='current')
    return state_dict


def load_pretrained_backbone(module: nn.Module,
                             filename: str,
                             prefix: Optional[str] = None,
                             map_location: str = 'cpu',
                             strict: bool = True) -> None:
    """Load an official SMT release file or a toolkit checkpoint into
    ``module``; with ``strict`` (default) any key or shape that does not fit
    stops the run (only a classification head may be left out)."""
    checkpoint = read_checkpoint(filename, map_location=map_location)
    state_dict = extract_backbone_state_dict(checkpoint, prefix,
                                             display_name(filename))
    upgrade_state_dict(module, state_dict)
    load_checked(module, state_dict, filename, strict=strict)
    print_log(
        f'SMT: loaded {len(state_dict)} tensors from '
        f'{display_name(filename)}',
        logger='current')


def model_state_dict(model: nn.Module, checkpoint: Dict,
                     filename: str) -> Dict:
    """The whole-model state dict of a loaded checkpoint: its
    ``state_dict`` (or the dict itself), or an official release file mapped
    onto an SMT classifier; a release file for any other model is refused,
    naming the backbone ``init_cfg`` as the way to use it."""
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'checkpoint {filename} holds a {type(checkpoint).__name__}, '
            'not a dict of weights')
    release = checkpoint.get('model')
    if isinstance(release, dict) and is_official_state_dict(release):
        if not _is_smt_classifier(model):
            raise CheckpointMismatchError(
                f'{filename} is an official SMT release file (an ImageNet '
                f'classifier); it fits a {type(model).__name__} only as '
                "backbone weights: set model.backbone.init_cfg=dict(type="
                f"'Pretrained', checkpoint='{filename}') instead of passing "
                'it as load_from or the checkpoint to test')
        return official_to_classifier(release)
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(
            f'checkpoint {filename} has no state dict')
    return state_dict


def _is_smt_classifier(model: nn.Module) -> bool:
    """A classifier with SMT backbone and a linear head (``head.fc``)."""
    from mmengine.registry import MODELS  # not ..backbones: no cycle
    backbone = getattr(model, 'backbone', None)
    head = getattr(model, 'head', None)
    return isinstance(backbone, MODELS.get('SMT')) and hasattr(head, 'fc')


def load_model_weights(
    model: nn.Module,
    filename: str,
    strict: bool = True,
    map_location='cpu',
    revise_keys=((r'^module\.', ''), )) -> Dict:
    """Read ``filename`` safely and load it into ``model`` (a whole model:
    classifier, detector, segmentor), strictly unless ``strict=False``.

    Returns the loaded checkpoint (e.g. for its ``meta``).

    Examples:
        >>> from smt_mm.models.utils import load_model_weights
        >>> load_model_weights(model, 'smt_tiny.pth')  # release file
    """
    checkpoint = read_checkpoint(filename, map_location=map_location)
    apply_checkpoint(model, checkpoint, filename, strict, revise_keys)
    return checkpoint


def apply_checkpoint(
    model: nn.Module,
    checkpoint: Dict,
    filename: str,
    strict: bool = True,
    revise_keys=((r'^module\.', ''), )) -> None:
    """Load an already read checkpoint into ``model`` as
    :func:`load_model_weights` does (``revise_keys``: regex renames, e.g.
    the ``module.`` prefix of wrapped models). A test-time-augmentation
    wrapper loads into the model it wraps, as in mmengine."""
    from mmengine.model import BaseTTAModel
    if isinstance(model, BaseTTAModel):
        model = model.module
    state_dict = model_state_dict(model, checkpoint, filename)
    for pattern, replacement in revise_keys:
        state_dict = _renamed(state_dict,
                              lambda k: re.sub(pattern, replacement, k))
    upgrade_state_dict(model, state_dict)
    load_checked(model, state_dict, filename, strict=strict)


# Top-level parts that tell a model's task; a checkpoint holding such parts
# of another task only is refused before the model is built.
TASK_PARTS = {
    'rpn_head': 'detection',
    'roi_head': 'detection',
    'bbox_head': 'detection',
    'decode_head': 'segmentation',
    'auxiliary_head': 'segmentation',
    'head': 'classification',
}


def parts_problem(model_cfg: Dict, state_dict: Dict) -> Optional[str]:
    """Why ``state_dict`` cannot be the model ``model_cfg`` builds, judged
    from the task parts (:data:`TASK_PARTS`) alone; None when it may be.

    Cheap enough to run before the model is built: a segmentation
    checkpoint given to a detection config is named at once, not after
    the runner's log. Another SMT architecture is
    :func:`backbone_problem`'s; other classes are left to the strict load.
    """
    wanted = {k for k in model_cfg if k in TASK_PARTS and model_cfg[k]}
    held = {
        re.sub(r'^module\.', '', str(k)).split('.')[0]
        for k in state_dict
    } & set(TASK_PARTS)
    if not wanted or not held or wanted & held:
        return None
    held_task = sorted({TASK_PARTS[k] for k in held})
    wanted_task = sorted({TASK_PARTS[k] for k in wanted})
    return (f'holds {", ".join(sorted(held))} (a {"/".join(held_task)} '
            f'model) but the config\'s {model_cfg.get("type", "model")} '
            f'has {", ".join(sorted(wanted))} (a {"/".join(wanted_task)} '
            'model); give a checkpoint trained with this config')


def backbone_problem(model_cfg: Dict, state_dict: Dict) -> Optional[str]:
    """How the ``backbone.`` part of ``state_dict`` differs from the SMT
    backbone ``model_cfg`` builds (another architecture: keys and shapes),
    judged on a backbone built on the meta device (no memory, no init);
    None when it fits, or when the config's backbone is no SMT."""
    backbone_cfg = model_cfg.get('backbone')
    if not isinstance(backbone_cfg, dict) or str(
            backbone_cfg.get('type')).rsplit('.', 1)[-1] != 'SMT':
        return None
    part = _strip_prefix(state_dict, 'backbone')
    if not part:
        return None
    smt = MODELS.get('SMT')  # registered by smt_mm.models.backbones
    if smt is None:
        return None
    args = {
        k: v
        for k, v in backbone_cfg.items()
        if k not in ('type', 'init_cfg', 'pretrained')
    }
    with torch.device('meta'):
        backbone = smt(**args)
    upgrade_state_dict(backbone, part)
    problems = describe_mismatch(backbone.state_dict(), part)
    if not problems:
        return None
    return (f"does not fit the config's SMT backbone (arch="
            f"{backbone_cfg.get('arch', 'tiny')!r}): {problems}; give a "
            'checkpoint trained with this config')


def check_checkpoint_parts(model_cfg: Dict, checkpoint: Dict,
                           filename: str) -> None:
    """Refuse a read ``checkpoint`` of another task than ``model_cfg``'s
    (:func:`parts_problem`) or with another SMT architecture
    (:func:`backbone_problem`), one line, before the model is built. An
    official release file is left to :func:`model_state_dict`.

    Raises:
        CheckpointMismatchError: The checkpoint holds another task's parts,
            or another backbone.
    """
    if not isinstance(checkpoint, dict) or \
            isinstance(checkpoint.get('model'), dict):
        return
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        return
    if 'module' in model_cfg and isinstance(model_cfg['module'], dict):
        model_cfg = model_cfg['module']  # a test-time-augmentation wrapper
    problem = parts_problem(model_cfg, state_dict) or backbone_problem(
        model_cfg, state_dict)
    if problem:
        raise CheckpointMismatchError(
            f'checkpoint {display_name(filename)} {problem}')
