# Copyright (c) SMT-MM contributors. All rights reserved.
"""CPU peak memory: measured by a fresh worker process
(``python -m smt_mm.benchmark.memory``)."""
import pytest

from smt_mm.benchmark.memory import peak_in_subprocess, reset_peak_rss


@pytest.mark.skipif(not reset_peak_rss(), reason='no /proc/self/clear_refs')
def test_worker_process_reports_a_peak():
    peak = peak_in_subprocess(
        dict(
            arch='t',
            side='fast',
            official=None,
            mode='forward',
            size=[64, 64],
            batch=1,
            precision='fp32',
            threads=1))
    assert peak is not None and peak > 0


def test_a_failed_worker_gives_none(capsys):
    assert peak_in_subprocess(dict(arch='no such arch')) is None
    assert 'memory worker failed' in capsys.readouterr().err
