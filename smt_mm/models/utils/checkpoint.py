# Copyright (c) SMT-MM contributors. All rights reserved.
"""Safe and strict loading of checkpoints.

:func:`safe_load` is the one function through which SMT-MM reads a local
checkpoint: backbone ``init_cfg=dict(type='Pretrained')``, ``load_from``,
``--resume`` and ``tools/test.py`` all reach it through mmengine's
``CheckpointLoader`` (see :mod:`smt_mm.safe_io`). It unpickles with
``weights_only=True``, so a file that would run code is refused, and turns
every way a file can fail to load into one message naming the file.
"""
import logging
import os
import os.path as osp
import pickle
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from smt_mm.errors import (CheckpointLoadError, CheckpointMismatchError,
                           UnsafeCheckpointError)
from .ckpt_convert import convert_official_state_dict, is_official_state_dict

_SHOWN = 10  # keys listed per kind of mismatch
# Set to 1 to unpickle trusted legacy files without the safe loader. Such a
# file can run any code on this machine while it loads.
UNSAFE_LOAD_ENV = 'SMT_MM_UNSAFE_LOAD'


def unsafe_load_enabled() -> bool:
    """Whether the user opted out of safe loading
    (``SMT_MM_UNSAFE_LOAD=1``)."""
    return os.environ.get(UNSAFE_LOAD_ENV, '') == '1'


def _refusal_reason(err: Exception) -> str:
    """The line of torch's weights-only error that says what was found
    (e.g. ``unsupported GLOBAL posix.system``), without its advice to
    switch safe loading off."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines[1:]:
        if not line.startswith(('Check the documentation', 'Please file')):
            return line.rstrip('.')
    return lines[0] if lines else type(err).__name__


def safe_load(filename: str, map_location='cpu'):
    """Load a local checkpoint without letting it run code.

    Only tensors, plain containers and the plain-data types allow-listed in
    :mod:`smt_mm.compat` (numpy values, mmengine's ``HistoryBuffer``) are
    rebuilt. With ``SMT_MM_UNSAFE_LOAD=1`` the file is unpickled fully, with
    a warning: only for files from a source you trust.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The loaded object (usually a dict).

    Raises:
        CheckpointLoadError: The file is missing, truncated or not a
            checkpoint.
        UnsafeCheckpointError: The file holds objects that the safe loader
            refuses.
    """
    path = osp.expanduser(str(filename))
    if not osp.isfile(path):
        raise CheckpointLoadError(f'checkpoint file not found: {filename}')
    unsafe = unsafe_load_enabled()
    if unsafe:
        print_log(
            f'{UNSAFE_LOAD_ENV}=1: loading {filename} with full '
            'unpickling; the file can run code on this machine',
            logger='current',
            level=logging.WARNING)
    try:
        # Explicit, so that torch's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot
        # turn safe loading off behind the user's back.
        return torch.load(
            path, map_location=map_location, weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        reason = _refusal_reason(err)
        if (not unsafe and str(err).startswith('Weights only load failed')
                and not reason.startswith('Unsupported operand')):
            raise UnsafeCheckpointError(
                f'refused to load checkpoint {filename} for safety: it holds '
                f'objects that could run code when unpickled '
                f'({reason}); if you trust its source, '
                f'{UNSAFE_LOAD_ENV}=1 loads it unsafely') from None
        raise _corrupt(filename, err) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError,
            pickle.PickleError) as err:
        raise _corrupt(filename, err) from None


def _corrupt(filename: str, err: Exception) -> CheckpointLoadError:
    what = 'the file is truncated or not a PyTorch checkpoint'
    if isinstance(err, EOFError):
        detail = 'unexpected end of file'
    elif isinstance(err, pickle.UnpicklingError):
        # An opcode the safe unpickler does not know: bytes that are no
        # pickle at all, or a pickle written in a way it does not accept.
        detail = _refusal_reason(err)
        what = ('the file is truncated, not a PyTorch checkpoint, or uses '
                'pickle instructions the safe loader refuses')
    else:
        detail = str(err).split('. ')[0].strip() or type(err).__name__
    return CheckpointLoadError(
        f'cannot read checkpoint {filename}: {what} ({detail[:200]})')


def _strip_prefix(state_dict: Dict, prefix: str) -> Dict:
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    return {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }


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
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(model_state[k].shape)}' for k in model_state
        if k in state_dict and hasattr(state_dict[k], 'shape')
        and state_dict[k].shape != model_state[k].shape
    ]
    parts = []
    for title, keys in (('shape mismatch', shapes), ('missing', missing),
                        ('unexpected', unexpected)):
        if keys:
            more = f' ... (+{len(keys) - _SHOWN} more)' \
                if len(keys) > _SHOWN else ''
            parts.append(f'{len(keys)} {title}: '
                         f'{", ".join(keys[:_SHOWN])}{more}')
    return '; '.join(parts)


def load_state_dict_strictly(module: nn.Module,
                             state_dict: Dict,
                             source: str = 'checkpoint') -> None:
    """Load ``state_dict`` into ``module``; raise naming any mismatch."""
    problems = describe_mismatch(module.state_dict(), state_dict)
    if problems:
        raise CheckpointMismatchError(
            f'{source} does not match {type(module).__name__}: {problems}')
    module.load_state_dict(state_dict, strict=False)


def load_pretrained_backbone(module: nn.Module,
                             filename: str,
                             prefix: Optional[str] = None,
                             map_location: str = 'cpu') -> None:
    """Load an official SMT release file or a toolkit checkpoint into
    ``module`` strictly (only a classification head may be left out)."""
    checkpoint = CheckpointLoader.load_checkpoint(
        filename, map_location=map_location)
    state_dict = extract_backbone_state_dict(checkpoint, prefix, filename)
    load_state_dict_strictly(module, state_dict, filename)
    print_log(
        f'SMT: loaded {len(state_dict)} tensors from {filename}',
        logger='current')
