# Copyright (c) SMT-MM contributors. All rights reserved.
"""Building the runner with what every SMT-MM run adds (SMTRunner, RNG
reseeding, TensorBoard logging where installed), after checking the run's
settings."""
from mmengine.config import Config, ConfigDict

from smt_mm.checks.dataset import DataFilesCheck
from smt_mm.checks.run import check_run_settings
from .config import amp_message, amp_on_cpu


def add_reseed_hook(cfg: Config) -> None:
    """Make training repeatable across ``--resume`` (see
    :class:`smt_mm.engine.RNGReseedHook` and :func:`key_train_sampler`), and
    keep old checkpoints until a new one is saved
    (:class:`smt_mm.engine.hooks.KeepCheckpointsHook`), unless the config
    has these hooks."""
    hooks = list(cfg.get('custom_hooks') or [])
    for name in ('RNGReseedHook', 'KeepCheckpointsHook'):
        if not any(h.get('type') == name for h in hooks):
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks
    key_train_sampler(cfg)


def key_train_sampler(cfg: Config) -> None:
    """Wrap the train dataloader's sampler in
    :class:`~smt_mm.engine.hooks.SMTKeyedSampler`, so that each sample's
    augmentation depends on its position only (exact resume with data
    workers, persistent or not)."""
    loader = cfg.get('train_dataloader')
    sampler = loader.get('sampler') if isinstance(loader, dict) else None
    if isinstance(sampler, dict) and sampler.get('type') != 'SMTKeyedSampler':
        loader['sampler'] = ConfigDict(type='SMTKeyedSampler', sampler=sampler)


def add_tensorboard_backend(cfg: Config) -> bool:
    """Log to TensorBoard too when the ``tensorboard`` package is there.

    Configs cannot probe for optional packages, so they list only
    ``LocalVisBackend``; returns whether a backend was added.
    """
    import importlib.util
    visualizer = cfg.get('visualizer')
    if not visualizer or importlib.util.find_spec('tensorboard') is None:
        return False
    backends = list(visualizer.get('vis_backends') or [])
    if any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        return False
    visualizer.vis_backends = backends + [
        ConfigDict(type='TensorboardVisBackend')
    ]
    return True


def build_runner(cfg: Config):
    """Build the config's runner (:class:`~smt_mm.engine.SMTRunner` unless
    the config names another ``runner_type``), with
    :class:`~smt_mm.engine.RNGReseedHook` added and logging to TensorBoard
    as well where it is installed. Without CUDA, a config naming mmengine's
    ``AmpOptimWrapper`` trains with bfloat16 autocast instead
    (:func:`~smt_mm.launch.config.amp_on_cpu`), and the log says so."""
    from mmengine.registry import RUNNERS
    check_run_settings(cfg)  # one line for a bad batch size, lr, ...
    add_reseed_hook(cfg)
    add_tensorboard_backend(cfg)
    amp_on_cpu(cfg)  # a config naming AmpOptimWrapper, without CUDA
    cfg.setdefault('runner_type', 'SMTRunner')
    runner = RUNNERS.build(cfg)
    # the listed data files, once the runner has built the datasets (not
    # a config entry: a dumped config runs without smt_mm's tools)
    runner.register_hook(DataFilesCheck())
    message = amp_message(cfg)
    if message:
        runner.logger.info(message)
    return runner
