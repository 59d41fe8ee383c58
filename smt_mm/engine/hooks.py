# Copyright (c) SMT-MM contributors. All rights reserved.
"""Hooks that SMT-MM adds to every training run."""
import logging
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS


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
      iteration)``: all generators are reseeded before each iteration, and
      from ``(seed, epoch)`` before each epoch;
    * each training sample's transforms draw from ``(seed, rank, epoch,
      pass, position)``, its position in the sampler's order of that pass
      (an epoch, or the endless stream of an iteration-based loop, which a
      resumed run replays from its start to skip what was trained). The
      hook tags the indices the train dataloader's sampler yields with this
      key and gives the dataset a ``__getitems__`` that reseeds the
      generators of the process loading the sample (a data worker, or the
      main process with ``num_workers=0``) from it before the sample is
      loaded. How many workers there are, whether they persist and how
      long they have lived does not matter.

    ``runner.seed`` already includes the rank when ``randomness`` has
    ``diff_rank_seed=True``, and a resumed run takes the seed stored in the
    checkpoint. A train dataloader whose batch sampler has no ``sampler``
    to tag (or no batch sampler) is left as it is, with a warning: its
    samples are not reseeded.
    """

    priority = 'VERY_HIGH'
    # keep the kinds of states apart
    _EPOCH, _ITER, _SAMPLE = 0, 1, 3

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        loader = getattr(loop, 'dataloader', None)
        if loader is None or not seed_each_sample(
                loader, lambda: self._sample_key_prefix(runner)):
            return
        # An iteration-based loop started its data iterator when it was
        # built; start it again so that every batch is drawn keyed.
        from mmengine.runner.loops import _InfiniteDataloaderIterator
        if isinstance(
                getattr(loop, 'dataloader_iterator', None),
                _InfiniteDataloaderIterator):
            loop.dataloader_iterator = _InfiniteDataloaderIterator(loader)

    def before_train_epoch(self, runner) -> None:
        self._reseed(runner.seed, self._EPOCH, runner.epoch)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        self._reseed(runner.seed, self._ITER, runner.iter)

    @classmethod
    def _sample_key_prefix(cls, runner) -> tuple:
        from mmengine.dist import get_rank
        return (_seed_word(runner.seed), cls._SAMPLE, get_rank(),
                int(runner.epoch))

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


class _KeyedSampler:
    """Yields the wrapped sampler's indices as :class:`KeyedIndex` with key
    ``prefix() + (pass, position)``: ``pass`` counts the iterations over
    the sampler under the same prefix, ``position`` the indices of this
    pass. Other attributes are the wrapped sampler's."""

    def __init__(self, sampler, prefix):
        self.sampler = sampler
        self._prefix = prefix
        self._passes = {}

    def __iter__(self):
        prefix = tuple(self._prefix())
        passes = self._passes.get(prefix, 0)
        self._passes = {prefix: passes + 1}
        for position, index in enumerate(self.sampler):
            yield KeyedIndex(index, prefix + (passes, position))

    def __len__(self):
        return len(self.sampler)

    def __getattr__(self, name):
        if name == 'sampler':  # not set yet (copy, unpickling)
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


def seed_each_sample(loader, prefix) -> bool:
    """Make each sample ``loader`` loads draw its random numbers from a key
    of its position (``prefix() + (pass, position)``, see
    :class:`RNGReseedHook`), in whichever process loads it. Call it before
    the loader is iterated. Returns whether it could; warns when not."""
    batch_sampler = getattr(loader, 'batch_sampler', None)
    sampler = getattr(batch_sampler, 'sampler', None)
    if sampler is None:
        print_log(
            'RNGReseedHook: the train dataloader has no batch sampler with '
            'a sampler to key; its data transforms are not reseeded per '
            'sample, so a resumed run may draw other augmentations than '
            'an uninterrupted one',
            logger='current',
            level=logging.WARNING)
        return False
    if not isinstance(sampler, _KeyedSampler):
        batch_sampler.sampler = _KeyedSampler(sampler, prefix)
    dataset = loader.dataset
    if not isinstance(dataset.__dict__.get('__getitems__'), _SeededGetItems):
        dataset.__getitems__ = _SeededGetItems(dataset)
    return True


@HOOKS.register_module()
class KeepCheckpointsHook(Hook):
    """Remove old checkpoints only after the new one is saved.

    mmengine's ``CheckpointHook`` (``max_keep_ckpts``, ``save_best``)
    deletes the checkpoints it no longer keeps *before* it saves the new
    one, so a save that fails (the disk fills up) can leave no checkpoint
    at all. This hook gives the checkpoint hook a file backend whose
    ``remove`` only notes the path, and deletes the noted files after the
    checkpoint hook has run for that step (it runs last): when the save
    raises, the run stops before that and the older checkpoints stay.
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
                hook.file_backend = _DeferredRemoval(backend, self._pending)

    def _remove_pending(self, runner) -> None:
        import os.path as osp

        # never the checkpoint just saved, should a name come round again
        last = runner.message_hub.get_info('last_ckpt')
        while self._pending:
            backend, path = self._pending.pop(0)
            if last is not None and osp.abspath(str(path)) == osp.abspath(
                    str(last)):
                continue
            if backend.exists(path):
                backend.remove(path)

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


class _DeferredRemoval:
    """A file backend whose ``remove`` is deferred to
    :class:`KeepCheckpointsHook`; everything else is the wrapped one's."""

    def __init__(self, backend, pending):
        self.backend = backend
        self._pending = pending

    def remove(self, filepath) -> None:
        self._pending.append((self.backend, filepath))

    def __getattr__(self, name):
        if name == 'backend':
            raise AttributeError(name)
        return getattr(self.backend, name)
