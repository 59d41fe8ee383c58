# Copyright (c) SMT-MM contributors. All rights reserved.
"""The code passes the style checks OpenMMLab projects use (flake8, isort,
yapf; settings in setup.cfg)."""
import importlib.util
import re
import subprocess
import sys

import pytest
from helpers import REPO

PATHS = ['smt_mm', 'tools', 'tests', 'setup.py']
CHECKS = {
    'flake8': ['-m', 'flake8'] + PATHS,
    'isort': ['-m', 'isort', '--check-only', '--diff'] + PATHS,
    'yapf': ['-m', 'yapf', '--diff', '--recursive', '--parallel'] + PATHS,
}


@pytest.mark.parametrize('tool', sorted(CHECKS))
def test_style(tool):
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f'{tool} is not installed (requirements/tests.txt)')
    proc = subprocess.run(
        [sys.executable] + CHECKS[tool],
        cwd=REPO,
        capture_output=True,
        text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    # isort counts the folders setup.cfg skips (data/, tests/data/)
    report = [
        line for line in proc.stdout.splitlines()
        if line.strip() and not re.fullmatch(r'Skipped \d+ files', line)
    ]
    assert not report, proc.stdout[-3000:]
