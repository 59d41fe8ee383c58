# Copyright (c) SMT-MM contributors. All rights reserved.
"""Each training sample's random draws depend on its position only
(``SMTKeyedSampler``): not on the number of workers, whether they persist,
nor on how long they have lived. The property that makes a resumed run
repeat the uninterrupted one, checked without training."""
import random

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from torch.utils.data import DataLoader, Dataset

from smt_mm.engine.hooks import SMTKeyedSampler


class Draws(Dataset):
    """Each sample is what the three generators draw for it."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return (i, random.random(), float(np.random.rand()),
                float(torch.rand(())))


def loader(sampler, workers, persistent=False):
    return DataLoader(
        sampler.dataset,
        batch_size=2,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=persistent,
        collate_fn=list)


def epoch(dataloader, number):
    dataloader.sampler.set_epoch(number)
    return [s for batch in dataloader for s in batch]


@pytest.mark.parametrize('workers,persistent', [(0, False), (1, False),
                                                (2, True)])
def test_epoch_draws_do_not_depend_on_the_workers_past(workers, persistent):

    def keyed():
        return SMTKeyedSampler(Draws(), DefaultSampler(Draws(), seed=3), 3)

    # the reference: main process, epoch 1 straight away (a resumed run)
    expected = epoch(loader(keyed(), 0), 1)
    run = loader(keyed(), workers, persistent)
    first = epoch(run, 0)  # the worker lives through epoch 0 first
    assert epoch(run, 1) == expected
    assert sorted(s[0] for s in first) == list(range(6))
    # every sample and epoch draws anew
    values = [s[1] for s in first + expected]
    assert len(set(values)) == len(values)


def test_endless_sampler_with_a_persistent_worker():

    def keyed():
        return SMTKeyedSampler(Draws(), InfiniteSampler(Draws(), seed=3), 3)

    def take(dataloader, count):
        found = []
        for batch in dataloader:
            found += batch
            if len(found) >= count:
                return found[:count]

    expected = take(loader(keyed(), 0), 10)
    assert take(loader(keyed(), 1, persistent=True), 10) == expected
    # the second lap over the 6 samples draws anew
    values = [s[1] for s in expected]
    assert len(set(values)) == len(values)


def test_sampler_config_is_built_inside():
    from mmengine.registry import DATA_SAMPLERS
    sampler = DATA_SAMPLERS.build(
        dict(
            type='SMTKeyedSampler',
            sampler=dict(type='DefaultSampler', shuffle=False)),
        default_args=dict(dataset=Draws(), seed=0))
    assert isinstance(sampler.sampler, DefaultSampler)
    assert len(sampler) == 6 and sampler.shuffle is False
    keys = [index.key for index in sampler]
    assert [k[-1] for k in keys] == list(range(6))  # positions
    assert [index.key for index in sampler][0][-2] == 1  # a second pass
