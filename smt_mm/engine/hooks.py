# Copyright (c) SMT-MM contributors. All rights reserved.
"""Hooks that SMT-MM adds to every training run."""
import logging
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import DATA_SAMPLERS, HOOKS
from torch.utils.data import Sampler


@HOOKS.register_module()
class RNGReseedHook(Hook):
    """Reseed every random generator from the position in the schedule so
    that a resumed run repeats the original, with or without data workers.

    mmengine seeds the generators once, when the runner starts (and each
    data worker once, when it starts). Resuming restores the weights,
    optimizer, schedulers and the sampler's order (``DefaultSampler``
    reseeds per epoch), but not the state of the ``random`` / numpy / torch
    generators, which drive RandomFlip and the other transforms, stochastic
    depth and mmdet's RoI samplers. After a restart these streams begin
    again from the run's seed, so a resumed run draws different random
    numbers than the uninterrupted one would have. Persistent workers
    (``persistent_workers=True``) make it worse: a worker lives for the
    whole run, so what it draws in epoch 2 depends on everything it drew in
    epoch 1, which a resumed run never replays.

    Deriving the state from the position instead makes each draw a function
    of the seed and the position only:

    * the model (stochastic depth, RoI sampling) draws from ``(seed,
      iteration)``: this hook reseeds all generators before each iteration,
      and from ``(seed, epoch)`` before each epoch;
    * each training sample's transforms draw from ``(seed, rank, epoch,
      pass, position)``: :class:`SMTKeyedSampler`, which the launchers wrap
      around the train dataloader's sampler
      (:func:`smt_mm.launch.runner.build_runner`), tags each index with its
      position, and the dataset reseeds the process that loads the sample
      (a data worker, or the main process with ``num_workers=0``) from it.
      How many workers there are, whether they persist and how long they
      have lived does not matter.

    A train dataloader built without that wrapper is wrapped here when the
    loop has not started iterating it (epoch-based loops); otherwise (an
    iteration-based loop starts its iterator when it is built) the hook
    warns that sample transforms are not reseeded.
    """

    priority = 'VERY_HIGH'
    # keep the kinds of states apart
    _EPOCH, _ITER = 0, 1

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        loader = getattr(loop, 'dataloader', None)
        if loader is None or isinstance(
                getattr(loader, 'sampler', None), SMTKeyedSampler):
            return
        batch_sampler = getattr(loader, 'batch_sampler', None)
        sampler = getattr(batch_sampler, 'sampler', None)
        if sampler is None or hasattr(loop, 'dataloader_iterator'):
            print_log(
                'RNGReseedHook: the train sampler is not an SMTKeyedSampler '
                '(build the runner with smt_mm.launch.runner.build_runner, or '
                "set train_dataloader.sampler=dict(type='SMTKeyedSampler', "
                'sampler=...)); data transforms are not reseeded per '
                'sample, so a resumed run may draw other augmentations than '
                'an uninterrupted one',
                logger='current',
                level=logging.WARNING)
            return
        batch_sampler.sampler = SMTKeyedSampler(
            loader.dataset, sampler, seed=runner.seed)

    def before_train_epoch(self, runner) -> None:
        self._reseed(runner.seed, self._EPOCH, runner.epoch)
        loader = getattr(runner.train_loop, 'dataloader', None)
        keyed = getattr(
            getattr(loader, 'batch_sampler', None), 'sampler', None)
        if isinstance(keyed, SMTKeyedSampler):
            # the key's epoch, whether or not a hook calls set_epoch
            keyed.epoch = runner.epoch

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        self._reseed(runner.seed, self._ITER, runner.iter)

    @staticmethod
    def _reseed(seed, kind: int, step: int) -> None:
        reseed_all((_seed_word(seed), kind, int(step)))


def _seed_word(seed) -> int:
    return int(seed or 0) & 0xFFFFFFFF


def reseed_all(key) -> None:
    """Seed ``random``, numpy's and torch's global generators from the
    integers ``key``.

    SeedSequence mixes the numbers into well-spread states, so neighbouring
    keys do not get related streams.
    """
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[0]))
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))


class KeyedIndex(int):
    """A dataset index carrying the key its sample's random draws are
    seeded from (it travels to the data worker with the index)."""

    def __new__(cls, index: int, key: tuple):
        self = super().__new__(cls, index)
        self.key = key
        return self

    def __reduce__(self):
        return KeyedIndex, (int(self), self.key)


@DATA_SAMPLERS.register_module()
class SMTKeyedSampler(Sampler):
    """Any sampler, its indices tagged so that each sample's random draws
    depend on its position only (see :class:`RNGReseedHook`).

    Yields the wrapped sampler's indices as :class:`KeyedIndex` with key
    ``(seed, kind, rank, epoch, pass, position)``: ``epoch`` is the last
    one given to :meth:`set_epoch` (the loops call it on the dataloader's
    sampler), ``pass`` counts the iterations over the sampler within that
    epoch (an iteration-based loop restarts a finite sampler when it runs
    out), ``position`` counts the indices of the pass. It gives the dataset
    a ``__getitems__`` (the batched access torch's fetcher prefers, in the
    data worker or the main process) that reseeds the generators from each
    index's key before loading it. Other attributes are the wrapped
    sampler's.

    Args:
        dataset: The dataset (given by mmengine's ``build_dataloader``).
        sampler (dict | Sampler): The sampler to wrap, or its config.
        seed (int, optional): The run's seed (given by ``build_dataloader``;
            None with ``diff_rank_seed``: then the wrapped sampler's).
    """
    _SAMPLE = 3  # kind of state, apart from RNGReseedHook's

    def __init__(self, dataset, sampler, seed=None):
        if isinstance(sampler, dict):
            from mmengine.registry import DATA_SAMPLERS as samplers
            sampler = samplers.build(
                sampler, default_args=dict(dataset=dataset, seed=seed))
        self.sampler = sampler
        self.dataset = dataset
        self.seed = seed if seed is not None else getattr(sampler, 'seed', 0)
        self.epoch = 0
        self._passes = {}
        if not isinstance(
                dataset.__dict__.get('__getitems__'), _SeededGetItems):
            dataset.__getitems__ = _SeededGetItems(dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        from mmengine.dist import get_rank
        prefix = (_seed_word(self.seed), self._SAMPLE, get_rank(),
                  int(self.epoch))
        passes = self._passes.get(prefix, 0)
        self._passes = {prefix: passes + 1}
        for position, index in enumerate(self.sampler):
            yield KeyedIndex(index, prefix + (passes, position))

    def __len__(self):
        return len(self.sampler)

    def __getattr__(self, name):
        if name in ('sampler', 'dataset'):  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.sampler, name)


class _SeededGetItems:
    """A dataset's ``__getitems__`` (the batched access torch's fetcher
    prefers): reseeds the generators from each index's key, then loads the
    sample with ``dataset[index]``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, indices):
        samples = []
        for index in indices:
            key = getattr(index, 'key', None)
            if key is not None:
                reseed_all(key)
            samples.append(self.dataset[int(index)])
        return samples


@HOOKS.register_module()
class KeepCheckpointsHook(Hook):
    """Remove old checkpoints only after the new one is saved, and only
    files of the run's own checkpoint folder.

    mmengine's ``CheckpointHook`` (``max_keep_ckpts``, ``save_best``)
    deletes the checkpoints it no longer keeps *before* it saves the new
    one, so a save that fails (the disk fills up) can leave no checkpoint
    at all; and the paths it deletes may come from a resumed checkpoint's
    message hub. This hook gives the checkpoint hook a file backend whose
    ``remove`` and ``rmtree`` only note the path, and deletes the noted
    paths after the checkpoint hook has run for that step (it runs last):
    when the save raises, the run stops before that and the older
    checkpoints stay. Every deletion passes :func:`removable`: a regular
    file (not a link, folder or device) directly in the checkpoint hook's
    folder; anything else is kept, with a warning.
    """

    priority = 'LOWEST'

    def __init__(self):
        self._pending = []

    def before_train(self, runner) -> None:
        from mmengine.hooks import CheckpointHook
        for hook in runner.hooks:
            backend = getattr(hook, 'file_backend', None)
            if isinstance(hook, CheckpointHook) and backend is not None \
                    and not isinstance(backend, _DeferredRemoval):
                folder = getattr(hook, 'out_dir', None) or runner.work_dir
                hook.file_backend = _DeferredRemoval(backend, folder,
                                                     self._pending)

    def _remove_pending(self, runner) -> None:
        import os.path as osp

        # never the checkpoint just saved, should a name come round again
        last = runner.message_hub.get_info('last_ckpt')
        while self._pending:
            backend, folder, path = self._pending.pop(0)
            if last is not None and osp.abspath(str(path)) == osp.abspath(
                    str(last)):
                continue
            problem = removable(path, folder)
            if problem is None:
                backend.remove(path)
            elif osp.lexists(str(path)):
                print_log(
                    f'not deleting {path}: {problem}; it is left where '
                    'it is',
                    logger='current',
                    level=logging.WARNING)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self._remove_pending(runner)

    def after_train_epoch(self, runner) -> None:
        self._remove_pending(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._remove_pending(runner)

    def after_train(self, runner) -> None:
        self._remove_pending(runner)


def removable(path, folder):
    """Why a run may not delete ``path`` (None if it may): only a regular
    file that sits directly in ``folder``, the run's checkpoint folder,
    reached without a symbolic link."""
    import os
    import os.path as osp
    import stat
    path = str(path)
    if osp.realpath(osp.dirname(osp.abspath(path))) != osp.realpath(
            str(folder)):
        return f'it is outside the checkpoint folder {folder}'
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return 'it does not exist'
    if not stat.S_ISREG(mode):
        return 'it is not a regular file'
    return None


class _DeferredRemoval:
    """A file backend whose ``remove`` and ``rmtree`` are deferred to
    :class:`KeepCheckpointsHook`; everything else is the wrapped one's."""

    def __init__(self, backend, folder, pending):
        self.backend = backend
        self._folder = folder
        self._pending = pending

    def remove(self, filepath) -> None:
        self._pending.append((self.backend, self._folder, filepath))

    rmtree = remove  # never run: a folder is not removable()

    def __getattr__(self, name):
        if name == 'backend':
            raise AttributeError(name)
        return getattr(self.backend, name)
