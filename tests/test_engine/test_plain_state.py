# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMTRunner writes checkpoints of plain data (torch's weights-only loader
reads them without any allow-list) and rebuilds the message hub exactly
when it loads them."""
import collections
import io

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel

from smt_mm.engine import SMTRunner
from smt_mm.engine.plain_state import (TAG, from_plain,
                                       plain_checkpoint_saving, to_plain)

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


def weights_only_round_trip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_round_trip_is_exact_and_weights_only_loadable():
    history = HistoryBuffer([0.5, 1.25, 3.0], [1, 1, 2])
    state = collections.OrderedDict(w=torch.ones(2))
    state._metadata = {'': {'version': 1}}
    checkpoint = {
        'message_hub': {
            'log_scalars': {
                'train/loss': history
            },
            'runtime_info': {
                'eta': np.float64(1.5),
                'iter': 3
            },
        },
        'state_dict': state,
        'arrays': [np.arange(4, dtype='>i4'),
                   np.float32(0.25)],
        'milestones': collections.Counter({
            8: 1,
            11: 1
        }),
        'ids': collections.deque([1, 2], maxlen=5),
    }
    plain = to_plain(checkpoint)
    assert plain['message_hub']['log_scalars']['train/loss'][TAG] == \
        'HistoryBuffer'
    assert plain['state_dict'] is state  # nothing to change: kept as is
    # the originals are untouched (the runner's message hub keeps its state)
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    back = from_plain(weights_only_round_trip(plain))
    rebuilt = back['message_hub']['log_scalars']['train/loss']
    assert isinstance(rebuilt, HistoryBuffer)
    assert rebuilt.max_length == history.max_length
    for name in ('_log_history', '_count_history'):
        old, new = getattr(history, name), getattr(rebuilt, name)
        assert new.dtype == old.dtype and np.array_equal(new, old)
    assert rebuilt.mean(3) == history.mean(3)
    eta = back['message_hub']['runtime_info']['eta']
    assert type(eta) is np.float64 and eta == 1.5
    array, scalar = back['arrays']
    assert array.dtype == np.dtype('>i4') and array.tolist() == [0, 1, 2, 3]
    assert type(scalar) is np.float32 and scalar == np.float32(0.25)
    assert back['milestones'] == checkpoint['milestones']
    assert back['ids'] == checkpoint['ids'] and back['ids'].maxlen == 5
    assert back['state_dict']._metadata == {'': {'version': 1}}


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs).squeeze(1)
        if mode == 'loss':
            return dict(loss=(out - labels).pow(2).mean())
        return out


class ToyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', ))

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(
            inputs=torch.full((2, ), float(index)),
            labels=torch.tensor(float(index)))


def toy_runner(work_dir, **kwargs):
    return SMTRunner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        **kwargs)


def test_runner_saves_plain_and_resumes_the_message_hub(tmp_path):
    runner = toy_runner(tmp_path / 'work')
    runner.train()
    path = tmp_path / 'work' / 'iter_2.pth'
    checkpoint = torch.load(path, weights_only=True)  # no allow-list
    assert checkpoint['message_hub']['log_scalars']['train/loss'][TAG] == \
        'HistoryBuffer'
    assert not any(
        type(h).__name__ == 'PlainCheckpointHook' for h in runner._hooks)
    original = runner.message_hub.get_scalar('train/loss')

    # resumed at the end of the schedule: train() loads and stops
    resumed = toy_runner(
        tmp_path / 'resumed', resume=True, load_from=str(path))
    resumed.train()
    buffer = resumed.message_hub.get_scalar('train/loss')
    assert isinstance(buffer, HistoryBuffer)
    assert np.array_equal(buffer._log_history, original._log_history)
    assert np.array_equal(buffer._count_history, original._count_history)
    assert resumed.iter == 2


def test_saving_context_leaves_the_hook_list_as_it_was(tmp_path):
    runner = toy_runner(tmp_path / 'work')
    before = list(runner._hooks)
    with plain_checkpoint_saving(runner):
        assert type(runner._hooks[-1]).__name__ == 'PlainCheckpointHook'
    assert runner._hooks == before
