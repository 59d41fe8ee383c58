# Copyright (c) SMT-MM contributors. All rights reserved.
"""mmengine checkpoints load through SMT-MM's safe loader; code-carrying
pickles and numpy data that is not plain numbers are refused with one line
and no crash; importing smt_mm widens nothing for other loaders."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from smt_mm.checkpoint import safe_load
from smt_mm.errors import UnsafeCheckpointError

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


def mmengine_style_checkpoint(path):
    hub = MessageHub.get_instance('test_unpickler')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('iter', np.int64(7))
    torch.save(
        dict(
            meta=dict(
                epoch=1,
                iter=np.int64(7),
                seed=np.int32(3),
                hist=HistoryBuffer([1.0, 2.0], [1, 1]),
                arr=np.arange(6, dtype=np.float32).reshape(2, 3),
                big=np.arange(3, dtype='>i4'),
                flags=np.array([True, False]),
                kind=np.dtype('float16')),
            message_hub=hub.state_dict(),
            state_dict={'w': torch.ones(2)}), path)


def test_mmengine_style_checkpoint_loads_safely(tmp_path):
    path = tmp_path / 'ckpt.pth'
    mmengine_style_checkpoint(path)
    loaded = safe_load(str(path), str(path))
    meta = loaded['meta']
    assert meta['iter'] == 7 and isinstance(meta['iter'], np.int64)
    assert type(meta['arr']) is np.ndarray
    assert np.array_equal(meta['arr'], np.arange(6).reshape(2, 3))
    assert np.array_equal(meta['big'], [0, 1, 2])
    assert meta['big'].dtype == np.dtype('>i4')
    assert meta['flags'].tolist() == [True, False]
    assert meta['kind'] == np.float16
    assert meta['hist'].mean() == 1.5
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.5


def test_import_adds_nothing_to_torch_allow_list(tmp_path):
    """Plain torch.load(weights_only=True) still refuses numpy data after
    importing smt_mm: the allow-list is not process-wide."""
    import smt_mm  # noqa: F401
    path = tmp_path / 'ckpt.pth'
    mmengine_style_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


class RunsCommand:

    def __reduce__(self):
        return (os.system, ('touch pwned_by_pickle', ))


def test_code_carrying_pickle_is_refused(tmp_path, monkeypatch):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': RunsCommand()}, f, protocol=2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match='bare pickle'):
        safe_load(str(path), str(path))
    assert not (tmp_path / 'pwned_by_pickle').exists()
    # the same payload inside a zip checkpoint: the unpickler refuses it
    torch.save({'state_dict': RunsCommand()}, path)
    with pytest.raises(UnsafeCheckpointError, match='posix.system'):
        safe_load(str(path), str(path))
    assert not (tmp_path / 'pwned_by_pickle').exists()


class ReachesGetattr:
    """Pickles as getattr(HistoryBuffer, '__init__'), a non-statistics
    attribute: the restricted getattr must refuse it."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = tmp_path / 'probe.pth'
    torch.save({'x': ReachesGetattr()}, path)
    with pytest.raises(UnsafeCheckpointError, match='refusing getattr'):
        safe_load(str(path), str(path))


class RawArray:
    """Pickles as numpy's own array reconstruction with a chosen dtype and
    raw bytes: what a crafted file can say."""

    def __init__(self, dtype, data, shape=(1, )):
        self.args = dtype, data, shape

    def __reduce__(self):
        dtype, data, shape = self.args
        return (np.core.multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                (1, shape, dtype, False, data))


class FlaggedDType:
    """A float64 dtype whose pickled state claims object-holding flags."""

    def __reduce__(self):
        return (np.dtype, ('f8', False, True), (3, '<', None, None, None, -1,
                                                -1, 0x1 | 0x8))


ATTACKS = {
    # a structured dtype with an object field, then bytes as "pointers"
    'object_field':
    lambda: RawArray(np.dtype([('a', 'O')]), b'\x41' * 8),
    'object_dtype':
    lambda: RawArray(np.dtype('O'), b'\x41' * 8),
    'structured':
    lambda: RawArray(np.dtype([('a', '<f4'), ('b', '<i4')]), b'\0' * 8),
    'flags':
    lambda: FlaggedDType(),
    'short_bytes':
    lambda: RawArray(np.dtype('f8'), b'\0' * 4, shape=(4, )),
}


@pytest.mark.parametrize('attack', sorted(ATTACKS))
def test_numpy_data_that_is_not_plain_numbers_is_refused(tmp_path, attack):
    """In a child process, so that a crash (segfault) fails the test rather
    than killing pytest."""
    with np.testing.suppress_warnings() as sup:
        sup.filter(DeprecationWarning)
        torch.save({'meta': {'x': ATTACKS[attack]()}}, tmp_path / 'a.pth')
    code = ('import sys\nfrom smt_mm.checkpoint import read_checkpoint\n'
            'from smt_mm.errors import SMTError\n'
            'try:\n    obj = read_checkpoint(sys.argv[1])\n'
            '    print(repr(obj["meta"]["x"]))\n'
            'except SMTError as e:\n    sys.exit("error: " + str(e))\n')
    proc = subprocess.run(
        [sys.executable, '-c', code,
         str(tmp_path / 'a.pth')],
        capture_output=True,
        text=True,
        timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'a.pth' in last, proc.stderr
