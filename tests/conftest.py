import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = os.environ.get(
    'SMT_FIXTURES', osp.join(osp.dirname(REPO), 'shared', 'fixtures'))
sys.path.insert(0, REPO)


@pytest.fixture(scope='session')
def fixtures_dir():
    if not osp.isfile(osp.join(FIXTURES, 'smt_tiny_official.pth')):
        pytest.fail(f'official fixtures not found in {FIXTURES}; set '
                    'SMT_FIXTURES to the folder holding smt_tiny_*.pth')
    return FIXTURES


def run_tool(args, cwd=REPO, timeout=900, env=None, check=True):
    """Run a command line tool; with ``check``, fail the test with its
    output when it exits non-zero."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited {proc.returncode}\n'
                    f'--- stdout ---\n{proc.stdout[-4000:]}\n'
                    f'--- stderr ---\n{proc.stderr[-6000:]}')
    return proc
