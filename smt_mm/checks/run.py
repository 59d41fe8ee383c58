# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks of a run's settings (data loaders, optimizer numbers,
``load_strict``) before the runner builds anything: one line instead of a
traceback from deep inside torch, or silent training on garbage."""
import math
import numbers

from mmengine.config import Config

from smt_mm.errors import LaunchError

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# Optimizer settings that must not be negative.
NON_NEGATIVE = ('lr', 'weight_decay', 'momentum', 'eps', 'dampening')


def check_run_settings(cfg: Config) -> None:
    """Refuse, with one line, settings that would fail deep inside the
    runner or train silently on garbage: a batch size below 1, negative or
    fractional worker counts, persistent workers without workers, a
    non-finite or negative learning rate (or other optimizer number), and a
    ``load_strict`` other than True or False (``None``, ``0`` or ``[]``
    would silently turn strict loading off).

    Raises:
        LaunchError: Naming the setting, the value and what is valid.
    """
    if 'load_strict' in cfg and not isinstance(cfg.load_strict, bool):
        raise LaunchError(f'load_strict must be True or False, got '
                          f'{cfg.load_strict!r}')
    _check_ranges(cfg)
    _check_dataloaders(cfg)
    _check_optimizer(cfg)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_dataloaders(cfg: Config) -> None:
    for split in DATALOADERS:
        loader = cfg.get(split)
        if not isinstance(loader, dict):
            continue
        workers = loader.get('num_workers', 0)
        persistent = loader.get('persistent_workers', False)
        if not isinstance(persistent, bool):
            raise LaunchError(f'{split}.persistent_workers must be True or '
                              f'False, got {persistent!r}')
        if persistent and workers == 0:
            raise LaunchError(f'{split}.persistent_workers=True needs '
                              'num_workers of at least 1 (set '
                              'persistent_workers=False to load in the '
                              'main process)')


def _optimizer_configs(node, path):
    """``(key path, optimizer config)`` for each ``optimizer`` under the
    optimizer wrapper config (one, or one per wrapper of a dict)."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get('optimizer'), dict):
        yield f'{path}.optimizer', node['optimizer']
    for key, child in node.items():
        if key != 'optimizer' and isinstance(child, dict):
            yield from _optimizer_configs(child, f'{path}.{key}')


def _check_optimizer(cfg: Config) -> None:
    if cfg.get('train_cfg') is None:
        return
    for path, optimizer in _optimizer_configs(
            cfg.get('optim_wrapper'), 'optim_wrapper'):
        for key, value in optimizer.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                if not _is_number(item):
                    if key in NON_NEGATIVE and item is not None:
                        raise LaunchError(f'{path}.{key} must be a number, '
                                          f'got {value!r}')
                    continue
                if not math.isfinite(item):
                    raise LaunchError(f'{path}.{key} must be a finite '
                                      f'number, got {value!r}')
                if key in NON_NEGATIVE and item < 0:
                    raise LaunchError(f'{path}.{key} must not be negative, '
                                      f'got {value!r}')


def _whole(low):
    return (lambda v: _is_int(v) and v >= low,
            f'a whole number of at least {low}')


_POSITIVE = (lambda v: _is_number(v) and math.isfinite(v) and v > 0,
             'a finite number above 0')
_SEED = (lambda v: v is None or _is_int(v), 'a whole number or None')
# Settings mmengine reads as counts or limits, with what is valid: outside
# it they divide by zero mid-run, loop forever, train nothing, or (a
# negative max_norm) silently turn every gradient around.
RANGES = {
    **{
        f'{split}.batch_size': _whole(1)
        for split in DATALOADERS
    },
    **{
        f'{split}.num_workers': _whole(0)
        for split in DATALOADERS
    },
    'train_cfg.max_epochs': _whole(1),
    'train_cfg.max_iters': _whole(1),
    'train_cfg.val_interval': _whole(1),
    'train_cfg.val_begin': _whole(0),
    'default_hooks.logger.interval': _whole(1),
    'randomness.seed': _SEED,
    'optim_wrapper.clip_grad.max_norm': _POSITIVE,
}


def _check_ranges(cfg: Config) -> None:
    for path, (valid, what) in RANGES.items():
        node, found = cfg, True
        for key in path.split('.'):
            if not isinstance(node, (dict, Config)) or key not in node:
                found = False
                break
            node = node[key]
        if found and not valid(node):
            raise LaunchError(f'{path} must be {what}, got {node!r}')
