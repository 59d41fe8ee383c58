# Copyright (c) SMT-MM contributors. All rights reserved.
"""The benchmark's report: ratios as speed-ups, the table and its caveat,
and the settings' sides."""
import pytest

from smt_mm.benchmark.report import caveat, markdown_table, ratio_rows
from smt_mm.benchmark.run import Settings

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


def row(impl, **values):
    return dict(arch='tiny', precision='fp32', impl=impl, **values)


def report_of(rows, repeats=5):
    return dict(
        environment=dict(
            device_name='test CPU',
            torch='2',
            threads=2,
            load_average=[0.1, 0.1, 0.1],
            sgemm_gflops=100.),
        settings=dict(
            batch=2,
            size=64,
            large_size=[64, 96],
            large_batch=1,
            repeats=repeats,
            warmup=0),
        equality={},
        results=rows)


def test_ratios_are_speed_ups_and_memory_quotients():
    rows = {
        'fast':
        row('fast', forward_img_s=20., latency_ms=5., peak_train_mib=50.),
        'official':
        row('official', forward_img_s=10., latency_ms=10.,
            peak_train_mib=100.),
    }
    (ratios, ) = ratio_rows(rows, 't', 'fp32')
    assert ratios['impl'] == 'fast/official'
    r = ratios['ratios']
    assert r['forward_img_s'] == 2. and r['latency_ms'] == 2.
    assert r['peak_train_mib'] == .5 and r['train_img_s'] is None


def test_only_pairs_of_sides_that_ran_get_a_ratio_row():
    assert ratio_rows({'fast': row('fast')}, 't', 'fp32') == []
    rows = {s: row(s) for s in ('fast', 'official', 'compiled')}
    assert [r['impl'] for r in ratio_rows(rows, 't', 'fp32')
            ] == ['fast/official', 'compiled/official', 'compiled/fast']


def test_table_rows_and_the_caveat_of_few_repeats():
    rows = [row('fast', forward_img_s=12.345, peak_forward_mib=7.6)]
    table = markdown_table(report_of(rows))
    assert table.startswith('Device: test CPU') and 'Caveat' not in table
    assert '| tiny | fp32 | fast | 12.3 | - | - | - | 8 | - |' in table
    table = markdown_table(report_of(rows, repeats=1))
    assert table.count(caveat(1)) == 1 and caveat(3) is None


def test_sides_follow_the_settings():
    assert Settings().sides == ['fast']
    assert Settings(
        official='smt.py',
        compile=True).sides == ['fast', 'official', 'compiled']
