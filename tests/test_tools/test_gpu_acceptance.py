# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/misc/gpu_acceptance.sh: valid bash, its options as docs/gpu.md
lists them, one line for bad input, nothing read from outside the
repository unless given, and a run that leaves its results and a markdown
summary in the output folder."""
import os.path as osp
import re
import subprocess

import pytest
from helpers import REPO

SCRIPT = 'tools/misc/gpu_acceptance.sh'
OPTIONS = [
    '--out', '--budget', '--steps', '--wheelhouse', '--official', '--rehearsal'
]


def run(*args, **kwargs):
    return subprocess.run(['bash', SCRIPT, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=120,
                          **kwargs)


def test_script_is_valid_bash_and_documents_its_options():
    subprocess.run(['bash', '-n', SCRIPT], cwd=REPO, check=True)
    shown = run('--help')
    assert shown.returncode == 0
    with open(osp.join(REPO, 'docs', 'gpu.md'), encoding='utf-8') as f:
        page = f.read()
    for option in OPTIONS:
        assert option in shown.stdout, option
        assert f'`{option}' in page, option


def test_no_default_path_outside_the_repository():
    with open(osp.join(REPO, SCRIPT), encoding='utf-8') as f:
        text = f.read()
    assert not re.search(r'\.\./\w',
                         text.split('cd "$(dirname "$0")/../.."', 1)[1])
    assert 'WHEELHOUSE=$WHEELHOUSE' in text  # the offline install's job


@pytest.mark.parametrize('args, message', [
    (['--budget', '9x'], '--budget 9x: give whole seconds'),
    (['--steps', 'env nope'], "--steps: no step 'nope'"),
    (['--steps', 'install'], 'the install step needs --wheelhouse DIR'),
    (['--wheelhouse', '/no/such/folder'], 'is not a folder'),
    (['--official', '/no/such/smt.py'], 'is not a file'),
    (['--out'], '--out needs a value'),
    (['--fast'], "unknown option '--fast'"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stderr.count('\n') == 1 and message in proc.stderr
    assert proc.stdout == ''


def test_a_rehearsal_step_writes_its_log_and_the_summary(tmp_path):
    out = tmp_path / 'acceptance'
    proc = run('--rehearsal', '--steps', 'env', '--budget', '60', '--out',
               str(out))
    assert proc.returncode == 0, proc.stderr
    summary = (out / 'summary.md').read_text()
    assert summary.startswith('# GPU acceptance run')
    assert re.search(r'^\| env \| ok \| \d+ \| \d+ \|$', summary, re.M)
    assert '## Environment' in summary and 'torch' in summary
    assert (out / 'env.log').is_file()
