# Copyright (c) SMT-MM contributors. All rights reserved.
"""Fixtures shared by all tests; helpers (paths, tools, tiny configs) are in
``tests/helpers``."""
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from helpers import FIXTURES, MINI_ARCH, OFFICIAL  # noqa: E402


@pytest.fixture(scope='session')
def fixtures_dir():
    """The official-format fixture (``tests/data/official_fixture``, or
    ``SMT_FIXTURES``); a missing one is an error, not a skip."""
    path = osp.join(FIXTURES, 'smt_tiny_official.pth')
    assert osp.isfile(path), (
        f'{path} not found: run tools/misc/make_official_fixture.py or set '
        'SMT_FIXTURES to the folder holding smt_tiny_*.pth')
    return FIXTURES


@pytest.fixture(scope='session')
def official_file():
    """The official repository's models/smt.py (``SMT_OFFICIAL``); the
    tests that run the official code skip without it."""
    if not osp.isfile(OFFICIAL):
        pytest.skip('the official models/smt.py is not given: set '
                    f'SMT_OFFICIAL to its path (got {OFFICIAL!r})')
    return OFFICIAL


@pytest.fixture
def mini_arch():
    """A copy of the tiny test architecture."""
    return dict(MINI_ARCH)
