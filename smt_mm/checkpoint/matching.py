# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checking that a state dict fits a model before loading it."""
import logging
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Dict, Iterator, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from smt_mm.errors import CheckpointLoadError, CheckpointMismatchError
from .reading import display_name

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
    # complex into real (imaginary part dropped) or float into integer
    kinds = [
        f'{k} (file {state_dict[k].dtype}, model {model_state[k].dtype})'
        for k in model_state if isinstance(state_dict.get(k), Tensor)
        and _kind(state_dict[k]) != _kind(model_state[k])
    ]
    parts = []
    for title, keys in (('shape mismatch', shapes), ('dtype mismatch', kinds),
                        ('missing', missing), ('unexpected', unexpected)):
        if keys:
            more = f', ... (+{len(keys) - _SHOWN} more)' \
                if len(keys) > _SHOWN else ''
            parts.append(f'{len(keys)} {title}: '
                         f'{", ".join(keys[:_SHOWN])}{more}')
    return '; '.join(parts)


def _kind(tensor: Tensor) -> str:
    if tensor.is_complex():
        return 'complex'
    return 'float' if tensor.is_floating_point() else 'integer'


def check_finite(state: Any, source: str) -> None:
    """Raise naming the first tensors holding NaN or infinity.

    ``state`` is a state dict or any nesting of dicts, lists and tuples
    (an optimizer's state); floating-point and complex tensors are checked.
    """
    bad = [
        path for path, value in _leaf_tensors(state, '')
        if (value.is_floating_point() or value.is_complex())
        and not bool(value.isfinite().all())
    ]
    if bad:
        more = f' (+{len(bad) - _SHOWN} more)' if len(bad) > _SHOWN else ''
        raise CheckpointLoadError(
            f'checkpoint {source} holds NaN or infinite values in '
            f'{", ".join(bad[:_SHOWN])}{more}')


def _leaf_tensors(state: Any, path: str) -> Iterator[Tuple[str, Tensor]]:
    if isinstance(state, Tensor):
        yield path, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _leaf_tensors(value,
                                     f'{path}.{key}' if path else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from _leaf_tensors(value, f'{path}[{i}]')


def check_state_dict_types(state_dict: Any, source: str) -> None:
    """Refuse anything but a dict of string keys and tensor values."""
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(
            f'checkpoint {source}: its weights are a '
            f'{type(state_dict).__name__}, not a dict of tensors')
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointMismatchError(
                f'checkpoint {source}: weight key {key!r} is a '
                f'{type(key).__name__}; keys must be strings')
        if not isinstance(value, Tensor):
            raise CheckpointMismatchError(
                f'checkpoint {source}: weight {key} is a '
                f'{type(value).__name__}; values must be tensors')


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
    source = display_name(source)
    check_state_dict_types(state_dict, source)
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
    # after the key check: only tensors that fit the model are computed on
    check_finite(state_dict, source)
    with allow_partial_loading():
        module.load_state_dict(state_dict, strict=False)


# Set while a state dict that load_checked has checked is being loaded, so
# that the models' own load hooks (check_load_in_hook) do not repeat it.
_CHECKED = ContextVar('smt_mm_state_dict_checked', default=False)


@contextmanager
def allow_partial_loading():
    """Inside the block, :func:`check_load_in_hook` does nothing: use it to
    load a partial state dict on purpose (``load_checked(strict=False)``
    does)."""
    token = _CHECKED.set(True)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def check_load_in_hook(module: nn.Module, state_dict: Dict, prefix: str,
                       what: str) -> None:
    """Strict, finite loading for models loaded by other libraries' code.

    Called from a model's ``_load_from_state_dict`` (SMT, SMTClassifier):
    mmengine's ``load_checkpoint`` (behind mmpretrain's ``get_model``,
    ``init_model``, the inferencers, a plain ``Runner``) loads with
    ``strict=False`` and no finiteness check; this makes the keys under
    ``prefix`` fit the module and their tensors finite, or raises one line.
    Does nothing inside :func:`allow_partial_loading`.
    """
    if _CHECKED.get():
        return
    ours = {
        k[len(prefix):]: v
        for k, v in state_dict.items()
        if isinstance(k, str) and k.startswith(prefix)
    }
    problems = describe_mismatch(module.state_dict(), ours)
    if problems:
        raise CheckpointMismatchError(
            f'the weights loaded into {what} do not match it: {problems} '
            '(to load a part on purpose, wrap the call in '
            'smt_mm.checkpoint.allow_partial_loading())')
    check_finite(ours, f'loaded into {what}')
