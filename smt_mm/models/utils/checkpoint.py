# Copyright (c) SMT-MM contributors. All rights reserved.
"""Strict loading of SMT backbone weights from official or toolkit files."""
from typing import Dict, Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .ckpt_convert import convert_official_state_dict, is_official_state_dict

_SHOWN = 10  # keys listed per kind of mismatch


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model it is loaded into."""


def _strip_prefix(state_dict: Dict, prefix: str) -> Dict:
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    return {k[len(prefix):]: v for k, v in state_dict.items()
            if k.startswith(prefix)}


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
            print_log(f'{source}: dropped the classification head '
                      f'({", ".join("head." + k for k in head)})',
                      logger='current')
    return state_dict


def describe_mismatch(model_state: Dict, state_dict: Dict) -> str:
    """Missing / unexpected / wrongly shaped keys, '' if they fit.

    BatchNorm's ``num_batches_tracked`` may be absent from a file.
    """
    missing = [k for k in model_state if k not in state_dict
               and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in model_state]
    shapes = [f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
              f'{tuple(model_state[k].shape)}' for k in model_state
              if k in state_dict and hasattr(state_dict[k], 'shape')
              and state_dict[k].shape != model_state[k].shape]
    parts = []
    for title, keys in (('shape mismatch', shapes), ('missing', missing),
                        ('unexpected', unexpected)):
        if keys:
            more = f' ... (+{len(keys) - _SHOWN} more)' \
                if len(keys) > _SHOWN else ''
            parts.append(f'{len(keys)} {title}: '
                         f'{", ".join(keys[:_SHOWN])}{more}')
    return '; '.join(parts)


def load_state_dict_strictly(module: nn.Module, state_dict: Dict,
                             source: str = 'checkpoint') -> None:
    """Load ``state_dict`` into ``module``; raise naming any mismatch."""
    problems = describe_mismatch(module.state_dict(), state_dict)
    if problems:
        raise CheckpointMismatchError(
            f'{source} does not match {type(module).__name__}: {problems}')
    module.load_state_dict(state_dict, strict=False)


def load_pretrained_backbone(module: nn.Module, filename: str,
                             prefix: Optional[str] = None,
                             map_location: str = 'cpu') -> None:
    """Load an official SMT release file or a toolkit checkpoint into
    ``module`` strictly (only a classification head may be left out)."""
    checkpoint = CheckpointLoader.load_checkpoint(
        filename, map_location=map_location)
    state_dict = extract_backbone_state_dict(checkpoint, prefix, filename)
    load_state_dict_strictly(module, state_dict, filename)
    print_log(f'SMT: loaded {len(state_dict)} tensors from {filename}',
              logger='current')
