"""mmengine checkpoints load under torch's weights_only default, while
arbitrary pickled objects are still refused."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import smt_mm  # noqa: F401  (applies the allow-list)


def test_mmengine_style_checkpoint_loads_safely(tmp_path):
    hub = MessageHub.get_instance('test_compat')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('iter', np.int64(7))
    ckpt = dict(
        meta=dict(
            epoch=1,
            iter=np.int64(7),
            seed=np.int32(3),
            hist=HistoryBuffer([1.0, 2.0], [1, 1]),
            arr=np.arange(4, dtype=np.float32)),
        message_hub=hub.state_dict(),
        state_dict={'w': torch.ones(2)})
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['iter'] == 7
    assert np.array_equal(loaded['meta']['arr'], np.arange(4))
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.5


class RunsCommand:

    def __reduce__(self):
        return (os.system, ('touch pwned_by_pickle', ))


def test_code_carrying_pickle_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': RunsCommand()}, f)
    os.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not (tmp_path / 'pwned_by_pickle').exists()


class ReachesGetattr:
    """Pickles as getattr(HistoryBuffer, '__init__'), a non-statistics
    attribute: the restricted getattr must refuse it."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = tmp_path / 'probe.pth'
    torch.save({'x': ReachesGetattr()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(path)
