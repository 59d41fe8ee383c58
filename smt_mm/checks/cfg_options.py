# Copyright (c) SMT-MM contributors. All rights reserved.
"""``--cfg-options`` checked against the config before anything runs.

mmengine adds a key that the config lacks, which is how a user sets an
argument the config leaves at its default
(``model.backbone.with_cp=True``). A mistyped key is added the same way and
silently does nothing (``train_cfg.max_epoch=1`` trains the config's
twelve epochs). So a key is refused only when it is most likely a typo:

* a part of it that the config lacks, beside an existing key of a close
  name (``difflib`` ratio >= :data:`CUTOFF`): the line names that key;
* a top-level key that is neither in the config nor a Runner argument
  (``randomness``, ``load_from``...), whatever its name.

Any other new key is added, as mmengine does. Keys under a list
(``pipeline.2.scale``) are left to mmengine.
"""
import difflib
from typing import Iterable, Optional

from smt_mm.errors import LaunchError

CUTOFF = 0.8

# Top-level keys mmengine's Runner.from_cfg, SMTRunner and our launchers
# read even when a config does not set them.
RUNNER_KEYS = frozenset(
    ('model', 'work_dir', 'train_dataloader', 'val_dataloader',
     'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
     'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
     'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
     'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
     'visualizer', 'default_scope', 'randomness', 'experiment_name',
     'model_wrapper_cfg', 'runner_type', 'compile', 'custom_imports',
     'tta_model', 'tta_pipeline', 'load_strict', 'find_unused_parameters'))


def check_cfg_options(cfg, options: Optional[dict]) -> None:
    """Refuse ``--cfg-options`` keys that are likely typos (see the module
    docstring), one line naming the nearest existing key.

    Args:
        cfg: The config the options are merged into (before the merge).
        options: ``{dotted key: value}`` as mmengine's ``DictAction``
            parses them.

    Raises:
        LaunchError: A near-miss of an existing key, or an unknown
            top-level key.
    """
    for key, value in (options or {}).items():
        problem = key_problem(cfg, key)
        if problem:
            raise LaunchError(f'--cfg-options {key}={value}: {problem}')


def key_problem(cfg, key: str) -> Optional[str]:
    """Why the dotted ``key`` is refused for ``cfg``, or None."""
    node, done = cfg, []
    for part in key.split('.'):
        if not hasattr(node, 'keys'):  # a dict, or the Config itself
            return None  # a list index or a value mmengine replaces
        if part in node:
            node, done = node[part], done + [part]
            continue
        if not done and part in RUNNER_KEYS:
            return None
        where = '.'.join(done + [part])
        known = list(node.keys()) + (list(RUNNER_KEYS) if not done else [])
        close = nearest(part, known)
        if close:
            return (f'the config has no {where}; did you mean '
                    f"{'.'.join(done + [close])}?")
        if not done:
            return (f'the config has no top-level key {part}, nor is it '
                    'a Runner argument; give a key of the config (e.g. '
                    'train_cfg.max_epochs=12)')
        return None
    return None


def nearest(name: str, keys: Iterable) -> Optional[str]:
    """The existing key closest to ``name`` at :data:`CUTOFF`, or None."""
    close = difflib.get_close_matches(
        name, [str(k) for k in keys], n=1, cutoff=CUTOFF)
    return close[0] if close else None
