# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checking that a state dict fits a model before loading it."""
import logging
from typing import Dict

import torch
import torch.nn as nn
from mmengine.logging import print_log

from smt_mm.errors import CheckpointLoadError, CheckpointMismatchError

_SHOWN = 5  # keys named per kind of mismatch


def describe_mismatch(model_state: Dict, state_dict: Dict) -> str:
    """Missing / unexpected / wrongly shaped keys, '' if they fit.

    BatchNorm's ``num_batches_tracked`` may be absent from a file.
    """
    missing = [
        k for k in model_state
        if k not in state_dict and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in state_dict if k not in model_state]
    shapes = [
        f'{k} (file {tuple(state_dict[k].shape)}, model '
        f'{tuple(model_state[k].shape)})' for k in model_state
        if k in state_dict and hasattr(state_dict[k], 'shape')
        and state_dict[k].shape != model_state[k].shape
    ]
    parts = []
    for title, keys in (('shape mismatch', shapes), ('missing', missing),
                        ('unexpected', unexpected)):
        if keys:
            more = f', ... (+{len(keys) - _SHOWN} more)' \
                if len(keys) > _SHOWN else ''
            parts.append(f'{len(keys)} {title}: '
                         f'{", ".join(keys[:_SHOWN])}{more}')
    return '; '.join(parts)


def check_finite(state_dict: Dict, source: str) -> None:
    """Raise naming the first tensors holding NaN or infinity."""
    bad = [
        k for k, v in state_dict.items() if isinstance(v, torch.Tensor)
        and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        more = f' (+{len(bad) - _SHOWN} more)' if len(bad) > _SHOWN else ''
        raise CheckpointLoadError(
            f'checkpoint {source} holds NaN or infinite values in '
            f'{", ".join(bad[:_SHOWN])}{more}')


def fitting_part(model_state: Dict, state_dict: Dict) -> Dict:
    """The entries of ``state_dict`` that the model has, with its shapes."""
    return {
        k: v
        for k, v in state_dict.items() if k in model_state
        and getattr(v, 'shape', None) == model_state[k].shape
    }


def load_checked(module: nn.Module,
                 state_dict: Dict,
                 source: str,
                 strict: bool = True) -> None:
    """Load ``state_dict`` into ``module`` after checking it.

    Args:
        module (nn.Module): The model (or sub-module) to load into.
        state_dict (dict): Keys relative to ``module``.
        source (str): Names the file in messages.
        strict (bool): Refuse any missing, unexpected or wrongly shaped key
            (one line naming the first ones). With False, the fitting part
            is loaded and the rest is listed in a warning.

    Raises:
        CheckpointLoadError: A tensor is not finite.
        CheckpointMismatchError: With ``strict``, the keys or shapes differ.
    """
    check_finite(state_dict, source)
    model_state = module.state_dict()
    problems = describe_mismatch(model_state, state_dict)
    if problems and strict:
        raise CheckpointMismatchError(
            f'checkpoint {source} does not match {type(module).__name__}: '
            f'{problems} (to load the matching part only, set '
            'load_strict=False, or strict=False in a Pretrained init_cfg)')
    if problems:
        print_log(
            f'partial load of {source} (strict loading switched off); '
            f'skipped: {problems}',
            logger='current',
            level=logging.WARNING)
        state_dict = fitting_part(model_state, state_dict)
    module.load_state_dict(state_dict, strict=False)
