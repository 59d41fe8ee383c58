# Copyright (c) SMT-MM contributors. All rights reserved.
"""The benchmark's official baseline: loaded from the official file by path,
it computes what our backbone computes on the same weights, and the CLI
reports every side with the comparison."""
import json
import sys

import benchmark as bench
import official_smt as loader
import pytest
import torch
from helpers import run_tool


def test_official_module_loads_without_its_imports(official_file):
    before = {
        name
        for name in ('timm', 'ptflops', 'thop') if name in sys.modules
    }
    module = loader.load_official_module(official_file)
    assert hasattr(module, 'smt_t')
    # the stand-ins are gone again
    assert {
        name
        for name in ('timm', 'ptflops', 'thop') if name in sys.modules
    } == before


def test_official_and_ours_agree_on_the_same_weights(official_file):
    models = bench.build_sides('tiny', ['fast', 'reference', 'official'],
                               official_file, torch.device('cpu'))
    report = bench.compare_sides(models, torch.device('cpu'), 64)
    for side in ('reference', 'official'):
        assert report[side]['max_abs_feature_diff'] < 1e-4, report
        assert report[side]['max_rel_grad_diff'] < 1e-3, report


def test_missing_official_file_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match='official SMT model file'):
        loader.load_official_module(str(tmp_path / 'nope.py'))
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
    assert impls == [
        'fast', 'reference', 'official', 'fast/official', 'fast/reference'
    ]
    for row in report['results'][:3]:
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
    assert '**fast/reference**' in proc.stdout
    # progress goes to stderr, in words
    assert 'SGEMM' in proc.stderr and 'tiny: ' in proc.stderr
