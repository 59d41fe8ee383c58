# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/analysis/benchmark.py as a user runs it: every side with the
comparison, the table on stdout, progress on stderr, one-line errors. The
library is tested in tests/test_benchmark."""
import json
import sys

from helpers import run_tool


def test_missing_official_file_is_one_line(tmp_path):
    proc = run_tool([
        sys.executable, 'tools/analysis/benchmark.py', '--official',
        str(tmp_path / 'nope.py')
    ],
                    check=False)
    assert proc.returncode == 2
    assert '--official: no such file' in proc.stderr


def test_benchmark_cli_reports_every_side(official_file, tmp_path):
    out = tmp_path / 'bench.json'
    md = tmp_path / 'bench.md'
    proc = run_tool([
        sys.executable, 'tools/analysis/benchmark.py', '--archs', 't',
        '--batch', '1', '--size', '64', '--large-size', '64', '96',
        '--repeats', '1', '--warmup', '0', '--no-memory', '--official',
        official_file, '--out',
        str(out), '--markdown',
        str(md)
    ])
    report = json.loads(out.read_text())
    impls = [row['impl'] for row in report['results']]
    assert impls == ['fast', 'official', 'fast/official']
    for row in report['results'][:2]:
        for key in ('forward_img_s', 'train_img_s', 'latency_ms',
                    'large_train_ms'):
            assert row[key] > 0, (row, key)
    assert report['equality']['tiny']['official'][
        'max_abs_feature_diff'] < 1e-4
    assert '**fast/official**' in md.read_text()
    # the table is what stdout holds, with the caveat of a single repeat
    assert not [
        line for line in proc.stdout.splitlines() if line.startswith('{')
    ]
    assert proc.stdout.startswith('Device: ')
    for text in (proc.stdout, md.read_text()):
        assert text.count('Caveat: --repeats 1: each number is one '
                          'timing') == 1
    assert 'SGEMM' in proc.stderr


def test_one_repeat_is_caveated_and_stdout_is_the_table(tmp_path):
    md = tmp_path / 'bench.md'
    proc = run_tool([
        sys.executable, 'tools/analysis/benchmark.py', '--archs', 't',
        '--batch', '1', '--size', '64', '--large-size', '64', '64',
        '--repeats', '1', '--warmup', '0', '--no-memory', '--markdown',
        str(md)
    ])
    assert proc.stdout.startswith('Device: ')
    assert not [
        line for line in proc.stdout.splitlines() if line.startswith('{')
    ]
    for text in (proc.stdout, md.read_text()):
        assert text.count('Caveat: --repeats 1: each number is one '
                          'timing') == 1
    # the fast side alone: no comparison, no ratio row
    assert '| tiny | fp32 | fast |' in proc.stdout
    assert '**fast/' not in proc.stdout
    # progress goes to stderr, in words
    assert 'SGEMM' in proc.stderr and 'tiny: ' in proc.stderr
