# Copyright (c) SMT-MM contributors. All rights reserved.
"""The reading budget: small hostile files are refused before they make the
reader allocate far more than they hold, with one line naming the file."""

import pytest
import torch
from helpers import deadline
from helpers.attacks import costs_in_child, rezip, write_attacks

from smt_mm.checkpoint import read_checkpoint
from smt_mm.errors import CheckpointLoadError, UnsafeCheckpointError


@pytest.fixture(scope='module')
def attacks(tmp_path_factory):
    return write_attacks(tmp_path_factory.mktemp('attacks'))


@pytest.mark.parametrize('name, reason', [
    ('stride0', 'claims 314572800 bytes as a view of a 4-byte storage'),
    ('bytearray', 'GLOBAL __builtin__.bytearray allocates memory'),
    ('deflate', 'is compressed'),
    ('deep', 'nested more than 100 levels deep'),
    ('meta', 'w is a meta tensor'),
    ('sparse', 'w is a torch.sparse_coo tensor'),
    ('legacy', 'legacy (pre-1.6) PyTorch format'),
    ('legacy_zip', 'legacy (pre-1.6) PyTorch format'),
])
def test_hostile_files_are_one_line_refusals(attacks, name, reason):
    with pytest.raises(UnsafeCheckpointError) as err:
        read_checkpoint(attacks[name])
    message = str(err.value)
    assert message.startswith(
        f'refused to load checkpoint {attacks[name]} for safety')
    assert reason in message and '\n' not in message


def test_shared_storage_claims_are_bounded(tmp_path):
    """Views that each fit their storage, but many of them: tied weights
    are fine, ten thousand claims on one storage are not."""
    base = torch.ones(1 << 18)  # 1 MiB
    tied = tmp_path / 'tied.pth'
    torch.save({'a': base, 'b': base[:10], 'c': base}, tied)
    loaded = read_checkpoint(str(tied))
    assert loaded['b'].untyped_storage().data_ptr() == \
        loaded['a'].untyped_storage().data_ptr()
    many = tmp_path / 'many.pth'
    torch.save({f'k{i}': base for i in range(400)}, many)
    with pytest.raises(UnsafeCheckpointError, match='claim .* bytes as views'):
        read_checkpoint(str(many))


def test_shared_containers_are_walked_once(tmp_path):
    """``[x, x]`` nested 60 deep is a 2 KB file; every walk over what was
    read (the budget's, the plain-data conversion's) visits each container
    once instead of 2**60 times."""
    from smt_mm.engine.plain_state import from_plain
    nested = [torch.ones(2)]
    for _ in range(60):
        nested = [nested, nested]
    path = tmp_path / 'shared.pth'
    torch.save({'x': nested}, path)
    assert path.stat().st_size < 8192
    with deadline(20):
        loaded = from_plain(read_checkpoint(str(path)))
    assert loaded['x'][0] is loaded['x'][1]


def test_malformed_pickles_are_one_line(tmp_path):
    """Pickles a hostile writer crafts that make torch's unpickler raise
    types other than UnpicklingError (unknown codec, BUILD on a set, a
    rebuild function called on an int, a persistent id not a tuple)."""
    good = tmp_path / 'good.pth'
    torch.save({'x': []}, good)
    bodies = {
        'codec': b'\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00'
        b'\x00nopeq\x00\x86R.',
        'build_on_set':
        b'\x80\x02cbuiltins\nset\n)R}X\x01\x00\x00\x00aK\x01sb.',
        'rebuild_int': b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\nK\x01'
        b'\x85R.',
        'persid_int': b'\x80\x02K\x01Q.',
    }
    for name, body in bodies.items():
        path = tmp_path / f'{name}.pth'
        rezip(good, path, {'data.pkl': body})
        with pytest.raises(CheckpointLoadError) as err:
            read_checkpoint(str(path))
        message = str(err.value)
        assert str(path) in message and '\n' not in message, (name, message)


def test_reading_attacks_stays_within_budget(tmp_path):
    """Peak memory (RSS, in a child process) of reading each hostile file
    stays within 150 MB of reading a valid one; the bombs would take
    300 MB each."""
    result = costs_in_child('smt_mm.checkpoint:read_checkpoint',
                            write_attacks(tmp_path))
    for name, (outcome, grown_mb, seconds) in result.items():
        assert outcome.startswith('UnsafeCheckpointError'), (name, outcome)
        assert grown_mb < 150 and seconds < 60, (name, grown_mb, seconds)
