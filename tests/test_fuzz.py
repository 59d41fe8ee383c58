# Copyright (c) SMT-MM contributors. All rights reserved.
"""Property-based tests of the input gates (hypothesis): generated
checkpoints (pickle op streams, zip layouts, nesting, numpy dtypes), image
headers and config values are either accepted or refused with one line of
the gate's error type; nothing hangs, nothing else escapes, and memory
stays within budget. A few hundred examples in the default tier, more in
the slow tier; cases hypothesis finds are kept in ``tests/data/hypothesis``
and tried first on every run."""
import io
import os.path as osp
import resource
import struct
import zipfile
import zlib

import pytest
import torch
from helpers import REPO, deadline
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from mmengine.config import Config

from smt_mm.checkpoint import safe_load
from smt_mm.checks.run import RANGES, check_run_settings
from smt_mm.errors import CheckpointLoadError, LaunchError
from smt_mm.files import check_image

DATABASE = DirectoryBasedExampleDatabase(
    osp.join(REPO, 'tests', 'data', 'hypothesis'))


def fuzz_settings(examples):
    return settings(
        max_examples=examples,
        deadline=None,
        database=DATABASE,
        suppress_health_check=[
            HealthCheck.too_slow, HealthCheck.function_scoped_fixture
        ])


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- pickles
def _checkpoint_zip(pickle_bytes: bytes, records=()) -> bytes:
    """A torch zip whose data.pkl is ``pickle_bytes``, with extra
    ``(name, bytes, compress)`` records."""
    buffer = io.BytesIO()
    torch.save({'w': torch.ones(4)}, buffer)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zin, \
            zipfile.ZipFile(out, 'w') as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith('data.pkl'):
                data = pickle_bytes
            zout.writestr(info.filename, data)
        prefix = zin.namelist()[0].split('/')[0]
        for name, data, compress in records:
            zout.writestr(
                f'{prefix}/{name}',
                data,
                compress_type=zipfile.ZIP_DEFLATED
                if compress else zipfile.ZIP_STORED)
    return out.getvalue()


_INT = st.integers(-2**40, 2**40).map(
    lambda n: b'J' + struct.pack('<i', max(-2**31, min(2**31 - 1, n))))
_TEXT = st.binary(
    max_size=12).map(lambda s: b'X' + struct.pack('<I', len(s)) + s)
_GLOBALS = st.sampled_from([
    b'ctorch._utils\n_rebuild_tensor_v2\n', b'cbuiltins\nbytearray\n',
    b'cnumpy.core.multiarray\n_reconstruct\n', b'cnumpy\ndtype\n',
    b'cnumpy\nndarray\n', b'cbuiltins\ngetattr\n', b'cposix\nsystem\n',
    b'ccollections\nOrderedDict\n', b'cbuiltins\nset\n',
    b'cmmengine.logging.history_buffer\nHistoryBuffer\n'
])
_OPS = st.sampled_from([
    b'(', b')', b'N', b'}', b']', b'a', b'e', b's', b'u', b't', b'R', b'b',
    b'0', b'1', b'2', b'\x85', b'\x86', b'\x87', b'\x88', b'\x89', b'Q',
    b'h\x00', b'h\x01', b'q\x00', b'q\x01', b'K\x05', b'M\xff\xff',
    b'G' + struct.pack('>d', 1e308), b'\x8c\x01w'
])
PICKLES = st.lists(
    st.one_of(_OPS, _INT, _TEXT, _GLOBALS),
    max_size=40).map(lambda ops: b'\x80\x02' + b''.join(ops) + b'.')
# nesting: (x, x) shared n levels deep (2**n paths to walk naively), or
# [[[...]]] n levels
SHARED = st.integers(
    30,
    200).map(lambda n: b'\x80\x02]q\x00' + b'h\x00h\x00\x86q\x00' * n + b'.')
DEEP = st.integers(
    1, 200).map(lambda n: b'\x80\x02' + b']' * n + b'a' * (n - 1) + b'.')
RECORDS = st.lists(
    st.tuples(
        st.sampled_from(['data/9', 'extra.pkl', 'byteorder']),
        st.binary(max_size=64), st.booleans()),
    max_size=2)


def _read(data: bytes):
    """``safe_load`` of ``data``: the value, or the one-line refusal."""
    try:
        safe_load(io.BytesIO(data), 'fuzzed.pth')
    except CheckpointLoadError as err:
        message = str(err)
        assert '\n' not in message and 'fuzzed.pth' in message, message


def _check_checkpoints(examples):

    @fuzz_settings(examples)
    @given(pickle=st.one_of(PICKLES, SHARED, DEEP), records=RECORDS)
    @example(  # found: shared nesting, 2**60 paths for a naive walk
        pickle=b'\x80\x02]q\x00' + b'h\x00h\x00\x86q\x00' * 60 + b'.',
        records=[])
    @example(
        pickle=b'\x80\x02cbuiltins\nbytearray\nJ\x00\x00\x00@\x85R.',
        records=[])  # found: a 1 GiB bytearray from 20 bytes
    def run(pickle, records):
        with deadline(10):
            _read(_checkpoint_zip(pickle, records))

    before = peak_mb()
    run()
    assert peak_mb() - before < 150


def test_generated_checkpoints_are_read_or_refused_in_one_line():
    _check_checkpoints(200)


@pytest.mark.slow
def test_many_generated_checkpoints_are_read_or_refused_in_one_line():
    _check_checkpoints(2000)


@fuzz_settings(100)
@given(head=st.binary(max_size=16), tail=st.binary(max_size=256))
def test_generated_bytes_are_refused_in_one_line(head, tail):
    """Any bytes: a pickle, a zip magic, an appended archive."""
    with deadline(10):
        _read(head + tail)
        _read(head + _checkpoint_zip(b'\x80\x02N.'))


# ----------------------------------------------------------------- images
def _png(width, height, body):

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack(
            '>I', zlib.crc32(kind + data))

    return (
        b'\x89PNG\r\n\x1a\n' +
        chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)) +
        chunk(b'IDAT', zlib.compress(body)) + chunk(b'IEND', b''))


@fuzz_settings(100)
@given(
    width=st.integers(1, 2**31 - 1),
    height=st.integers(1, 2**31 - 1),
    body=st.binary(max_size=64))
def test_generated_image_headers_are_refused_before_decoding(
        tmp_path_factory, width, height, body):
    path = tmp_path_factory.mktemp('png') / 'image.png'
    path.write_bytes(_png(width, height, body))
    before = peak_mb()
    with deadline(10):
        try:
            check_image(str(path))
        except LaunchError as err:
            assert '\n' not in str(err)
    assert peak_mb() - before < 150


# ---------------------------------------------------------- config values
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(),
                   st.text(max_size=5), st.lists(st.integers(), max_size=2))


@fuzz_settings(200)
@given(key=st.sampled_from(sorted(RANGES)), value=VALUES)
def test_generated_config_numbers_are_checked_in_one_line(key, value):
    cfg = Config(
        dict(
            train_cfg=dict(max_epochs=2, val_interval=1),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    cfg.merge_from_dict({key: value})
    valid, _ = RANGES[key]
    try:
        check_run_settings(cfg)
    except LaunchError as err:
        assert '\n' not in str(err) and str(err).startswith(key)
        assert not valid(value)
    else:
        assert valid(value)
