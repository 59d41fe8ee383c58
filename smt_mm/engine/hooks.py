# Copyright (c) SMT-MM contributors. All rights reserved.
"""Hooks that SMT-MM adds to every training run."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGReseedHook(Hook):
    """Reseed every random generator from ``(seed, epoch)`` and
    ``(seed, iteration)`` so that a resumed run repeats the original.

    mmengine seeds the generators once, when the runner starts. Resuming
    restores the weights, optimizer, schedulers and the sampler's order
    (``DefaultSampler`` reseeds per epoch), but not the state of the
    ``random`` / numpy / torch generators, which drive RandomFlip and the
    other transforms, stochastic depth and mmdet's RoI samplers. After a
    restart these streams begin again from the run's seed, so a resumed run
    draws different random numbers than the uninterrupted one would have.

    Deriving the state from the position in the schedule instead makes each
    draw a function of ``(seed, epoch, iteration)`` only. Seeding happens
    before each epoch (the first batch is loaded right after it) and before
    each iteration (the model's forward and the loading of the next batch
    follow). With ``num_workers > 0`` the workers are seeded by mmengine's
    ``worker_init_fn`` from the seed alone, which is just as repeatable.

    Iteration-based loops load the batch of iteration ``i`` before its
    ``before_train_iter``, and a resumed one first loads (to skip) the
    batches already trained, all in a row. With ``num_workers=0`` these
    loads draw from the main process's generators, so the hook also
    reseeds from ``(seed, i)`` right before batch ``i`` is loaded, by
    wrapping the loop's data iterator: the skipped and the new batches then
    see the states they saw in the uninterrupted run.

    ``runner.seed`` already includes the rank when ``randomness`` has
    ``diff_rank_seed=True``, and a resumed run takes the seed stored in the
    checkpoint.
    """

    priority = 'VERY_HIGH'
    _EPOCH, _ITER, _LOAD = 0, 1, 2  # keep the kinds of states apart

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator') and not isinstance(
                loop.dataloader_iterator, _ReseedingIterator):
            loop.dataloader_iterator = _ReseedingIterator(
                loop.dataloader_iterator,
                lambda i: self._reseed(runner.seed, self._LOAD, i))

    def before_train_epoch(self, runner) -> None:
        self._reseed(runner.seed, self._EPOCH, runner.epoch)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        self._reseed(runner.seed, self._ITER, runner.iter)

    @staticmethod
    def _reseed(seed, kind: int, step: int) -> None:
        # SeedSequence mixes the three numbers into well-spread states, so
        # neighbouring steps do not get related streams.
        entropy = [int(seed or 0) & 0xFFFFFFFF, kind, int(step)]
        state = np.random.SeedSequence(entropy).generate_state(2)
        random.seed(int(state[0]))
        np.random.seed(int(state[0]))
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))


class _ReseedingIterator:
    """Calls ``reseed(i)`` before loading the ``i``-th batch (from 0)."""

    def __init__(self, iterator, reseed):
        self._iterator = iterator
        self._reseed = reseed
        self._count = 0

    def __iter__(self):
        return self

    def __next__(self):
        self._reseed(self._count)
        self._count += 1
        return next(self._iterator)
