# Copyright (c) SMT-MM contributors. All rights reserved.
"""What ``--resume`` refuses: checkpoints it cannot continue from, checked
before anything is loaded; and the one warning when the config's schedule
is not the checkpoint's."""
import logging
import math
import numbers

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MessageHub, print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from smt_mm.checkpoint import check_finite
from smt_mm.errors import CheckpointLoadError, CheckpointMismatchError

# Optimizer state entries that hold one value per parameter element.
PER_ELEMENT_STATE = ('exp_avg', 'exp_avg_sq', 'max_exp_avg_sq',
                     'momentum_buffer', 'square_avg', 'grad_avg', 'acc_delta',
                     'sum', 'ax', 'prev', 'exp_inf', 'mu_product')
# Param group keys that differ between torch releases or that schedulers
# add: not a sign of another optimizer.
TOLERATED_GROUP_KEYS = ('foreach', 'maximize', 'capturable', 'differentiable',
                        'fused', 'decoupled_weight_decay')
# Scheduler state that records progress rather than the schedule.
SCHEDULER_PROGRESS = ('last_step', '_global_step', 'verbose', '_last_value',
                      '_get_value_called_within_step', 'last_epoch')
SHOWN = 3


def check_resume_checkpoint(runner, checkpoint, filename: str) -> None:
    """Refuse, with one line naming ``filename``, a checkpoint that
    ``--resume`` cannot continue from: no ``meta`` epoch / iteration, a
    malformed message hub, optimizer state that does not fit the config's
    optimizer (another optimizer type, other parameter groups, wrongly
    shaped or non-finite state); warn once when the config's schedule
    differs from the checkpoint's, whose schedule mmengine restores.

    Called by :class:`~smt_mm.engine.SMTRunner` on the checkpoint it read
    for a resume, before anything is loaded; ``runner`` has its optimizer
    and schedulers built from the config.

    Raises:
        CheckpointLoadError: The file is not a training checkpoint.
        CheckpointMismatchError: Its optimizer state does not fit.
    """
    where = f'--resume {filename}'
    if not isinstance(checkpoint, dict):
        raise CheckpointLoadError(f'{where}: not a training checkpoint (it '
                                  f'holds a {type(checkpoint).__name__})')
    meta = checkpoint.get('meta')
    for key in ('epoch', 'iter'):
        value = meta.get(key) if isinstance(meta, dict) else None
        if not _is_count(value):
            found = 'missing' if value is None else f'{value!r}, not a count'
            raise CheckpointLoadError(
                f'{where}: meta.{key} is {found}, so it is not a checkpoint '
                'that training wrote (epoch_N.pth / iter_N.pth); to start '
                'from its weights use --cfg-options load_from=FILE without '
                '--resume')
    _check_message_hub(checkpoint.get('message_hub'), where)
    if 'optimizer' in checkpoint and runner.optim_wrapper is not None:
        _check_optimizer_state(runner, checkpoint['optimizer'], where)
    if 'param_schedulers' in checkpoint:
        _warn_schedule_changes(runner, checkpoint['param_schedulers'], meta,
                               where)


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and \
        not isinstance(value, bool) and value >= 0


def _check_message_hub(hub, where: str) -> None:
    if isinstance(hub, MessageHub):  # pickled whole by old mmengine runs
        return

    def bad(what):
        return CheckpointLoadError(f'{where}: its message_hub is malformed '
                                   f'({what}); it cannot be resumed')

    if not isinstance(hub, dict):
        raise bad(f'a {type(hub).__name__}, expected a dict of log_scalars, '
                  'runtime_info and resumed_keys')
    for key in ('log_scalars', 'runtime_info', 'resumed_keys'):
        if not isinstance(hub.get(key), dict):
            found = 'missing' if key not in hub else \
                f'a {type(hub[key]).__name__}'
            raise bad(f'{key} is {found}, expected a dict')
    for name, buffer in hub['log_scalars'].items():
        if not isinstance(name, str) or not isinstance(buffer, HistoryBuffer):
            raise bad(f'log_scalars[{name!r}] is a {type(buffer).__name__}, '
                      'expected a HistoryBuffer')
        logs = getattr(buffer, '_log_history', None)
        counts = getattr(buffer, '_count_history', None)
        if not (isinstance(logs, np.ndarray)
                and isinstance(counts, np.ndarray)
                and logs.shape == counts.shape and logs.ndim == 1
                and logs.dtype.kind in 'biuf' and counts.dtype.kind in 'biuf'):
            raise bad(f'log_scalars[{name!r}] has no matching 1-D numeric '
                      'value and count histories')
    for name, value in hub['resumed_keys'].items():
        if not isinstance(name, str) or not isinstance(value, bool):
            raise bad(f'resumed_keys[{name!r}] is {value!r}, expected True '
                      'or False')
    info = hub['runtime_info']
    if not all(isinstance(k, str) for k in info):
        raise bad('runtime_info has keys that are not names')
    ids = info.get('keep_ckpt_ids', [])
    if not isinstance(ids, (list, tuple)) or not all(map(_is_count, ids)):
        raise bad(f'runtime_info keep_ckpt_ids is {ids!r}, expected a list '
                  'of step numbers')
    for key in ('last_ckpt', 'best_ckpt'):
        if key in info and not isinstance(info[key], str):
            raise bad(f'runtime_info {key} is {info[key]!r}, expected a path')


def _parameter_names(runner) -> dict:
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    return {id(p): name for name, p in model.named_parameters()}


def _check_optimizer_state(runner, state, where: str) -> None:
    wrapper = runner.optim_wrapper
    names = _parameter_names(runner)
    if not isinstance(wrapper, OptimWrapperDict):
        _check_one_optimizer(wrapper.optimizer, state, 'optimizer', names,
                             where)
        return
    if not isinstance(state, dict) or set(state) != set(
            wrapper.optim_wrappers):
        found = sorted(state) if isinstance(state, dict) else \
            type(state).__name__
        raise CheckpointMismatchError(
            f'{where}: its optimizer state holds {found}, the config builds '
            f'optimizers {sorted(wrapper.optim_wrappers)}')
    for key, one in wrapper.optim_wrappers.items():
        _check_one_optimizer(one.optimizer, state[key], f'optimizer.{key}',
                             names, where)


def _check_one_optimizer(optimizer, state, label: str, names: dict,
                         where: str) -> None:
    kind = type(optimizer).__name__
    groups = state.get('param_groups') if isinstance(state, dict) else None
    per_param = state.get('state') if isinstance(state, dict) else None
    if not isinstance(groups, list) or not isinstance(per_param, dict) or \
            not all(isinstance(g, dict) and isinstance(g.get('params'), list)
                    for g in groups):
        raise CheckpointLoadError(
            f'{where}: its {label} is not an optimizer state (expected a '
            "dict with 'state' and 'param_groups' lists of 'params')")
    current = optimizer.param_groups
    if len(groups) != len(current) or any(
            len(g['params']) != len(c['params'])
            for g, c in zip(groups, current)):
        raise CheckpointMismatchError(
            f'{where}: its {label} has parameter groups of sizes '
            f'{[len(g["params"]) for g in groups]}, the config\'s {kind} has '
            f'{[len(c["params"]) for c in current]}; resume with the config '
            'it was trained with, or start from its weights with '
            '--cfg-options load_from=FILE')

    def settings(group):
        return {
            k
            for k in group if k != 'params' and k not in TOLERATED_GROUP_KEYS
            and not k.startswith('initial_')
        }

    for i, (saved, group) in enumerate(zip(groups, current)):
        extra, missing = settings(saved) - settings(group), \
            settings(group) - settings(saved)
        if extra or missing:
            raise CheckpointMismatchError(
                f'{where}: its {label} was saved by another optimizer than '
                f'the config\'s {kind}: parameter group {i} has '
                f'{", ".join(sorted(extra)) or "no other settings"} where '
                f'{kind} has {", ".join(sorted(missing)) or "none"}; resume '
                'with the config it was trained with, or start from its '
                'weights with --cfg-options load_from=FILE')
        for key, value in saved.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise CheckpointLoadError(
                    f'{where}: its {label} parameter group {i} has {key} '
                    f'{value}; it cannot be resumed')
    finite = {}
    for saved, group in zip(groups, current):
        for pid, param in zip(saved['params'], group['params']):
            entry = per_param.get(pid)
            if entry is None:
                continue
            name = names.get(id(param), f'#{pid}')
            if not isinstance(entry, dict):
                raise CheckpointLoadError(
                    f'{where}: its {label} state of {name} is a '
                    f'{type(entry).__name__}, expected a dict of tensors')
            for key, value in entry.items():
                if not isinstance(value, torch.Tensor):
                    continue
                if key in PER_ELEMENT_STATE and value.shape != param.shape:
                    raise CheckpointMismatchError(
                        f'{where}: its {label} state {key} of {name} has '
                        f'shape {tuple(value.shape)}, the parameter '
                        f'{tuple(param.shape)}; it was saved for another '
                        'model')
                finite[f'{label}.state[{name}].{key}'] = value
    check_finite(finite, filename_of(where))


def filename_of(where: str) -> str:
    return where[len('--resume '):] if where.startswith('--resume ') \
        else where


def _warn_schedule_changes(runner, saved, meta: dict, where: str) -> None:
    """One warning listing how the config's schedule differs from the
    checkpoint's (which mmengine restores over the config's)."""
    current = runner.param_schedulers
    changes = []
    if isinstance(current, dict):
        pairs = [(f'{name} ', current[name], (saved or {}).get(name))
                 for name in current] if isinstance(saved, dict) else []
        if not isinstance(saved, dict):
            changes.append('the checkpoint has one list of schedulers, the '
                           'config one per optimizer')
    elif current is not None:
        pairs = [('', current, saved)]
    else:
        pairs = []
    for prefix, built, stored in pairs:
        stored = stored if isinstance(stored, list) else []
        if len(built) != len(stored):
            changes.append(f'{prefix}{len(stored)} schedulers in the '
                           f'checkpoint, {len(built)} in the config')
        for i, (scheduler, state) in enumerate(zip(built, stored)):
            if not isinstance(state, dict):
                continue
            own = scheduler.state_dict()
            for key in sorted(set(own) | set(state)):
                if key in SCHEDULER_PROGRESS or own.get(key) == state.get(key):
                    continue
                changes.append(f'{prefix}{type(scheduler).__name__} #{i} '
                               f'{key} {state.get(key)!r} -> '
                               f'{own.get(key)!r}')
    loop = runner.train_loop
    epoch, done = meta.get('epoch', 0), meta.get('iter', 0)
    max_epochs = getattr(loop, 'max_epochs', None)
    by_epoch = type(loop).__name__ == 'EpochBasedTrainLoop'
    if by_epoch and max_epochs is not None and epoch >= max_epochs:
        changes.append(f'the checkpoint is at epoch {epoch} and the config '
                       f'stops at max_epochs {max_epochs}: nothing to train')
    elif not by_epoch and getattr(loop, 'max_iters', None) is not None \
            and done >= loop.max_iters:
        changes.append(f'the checkpoint is at iteration {done} and the '
                       f'config stops at max_iters {loop.max_iters}: '
                       'nothing to train')
    if not changes:
        return
    shown = '; '.join(changes[:6]) + (f' (+{len(changes) - 6} more)'
                                      if len(changes) > 6 else '')
    print_log(
        f'{where}: the config\'s training schedule differs from the '
        f'checkpoint\'s ({shown} [checkpoint -> config]); resuming restores '
        'the checkpoint\'s schedulers, so the learning rate follows the old '
        'schedule (and stays at its last value past its end). To train '
        'with the new schedule, start a new run from these weights with '
        '--cfg-options load_from=FILE',
        logger='current',
        level=logging.WARNING)
