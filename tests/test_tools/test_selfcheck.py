# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/misc/selfcheck.py as a user runs it on a new node."""
import os
import os.path as osp
import re
import struct
import sys
import zipfile

import pytest
import torch
from helpers import load_tool, run_tool

from smt_mm.checks.machine import fatbin_archs, runs_on

TOOL = 'tools/misc/selfcheck.py'
# small and short: the throughput figure on the CPU at 64x64, half a second
QUICK = ['--size', '64', '--batch', '1', '--seconds', '0.5']
# an mmcv wheel built with CUDA ops, to read its kernel architectures
DEVICE_WHEEL = os.environ.get('SMT_CUDA_MMCV_WHEEL', '')


def test_selfcheck_passes_and_reports_each_check():
    proc = run_tool([sys.executable, TOOL, *QUICK])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('versions') and 'mmcv 2.1.0' in lines[0]
    assert re.search(r'torch \d+\.\d+', lines[0])
    assert lines[1].startswith('device')
    cuda = torch.cuda.is_available()
    expected = ['mmcv build', 'mmcv ops', 'smt', 'amp bf16', 'throughput']
    if cuda:
        expected.insert(4, 'amp fp16')
    results = [line for line in lines if line.startswith(('ok', 'FAIL'))]
    assert [line[6:17].strip() for line in results] == expected, lines
    assert all(line.startswith('ok ') for line in results), lines
    assert re.search(r'throughput .* [\d.]+ images/s', proc.stdout)
    if cuda:
        assert 'match cpu' in proc.stdout and 'skipped' not in proc.stdout
    else:
        skip = [line for line in lines if line.startswith('skip  gpu')]
        assert len(skip) == 1 and 'GPU checks skipped' in skip[0]
        assert lines[-1] == ('selfcheck passed: 5 checks ok on cpu; GPU '
                             'checks skipped')
    assert proc.stderr.count('\n') < 5, proc.stderr  # no tracebacks


def test_a_failing_check_is_one_line_and_a_nonzero_exit(tmp_path):
    # mmcv's nms broken for the run: it keeps no box
    (tmp_path / 'sitecustomize.py').write_text(
        'import mmcv.ops, torch\n'
        'mmcv.ops.nms = lambda boxes, scores, iou, **kw: '
        '(boxes.new_zeros(0, 5), torch.zeros(0, dtype=torch.long))\n')
    proc = run_tool([sys.executable, TOOL, '--device', 'cpu', *QUICK],
                    env=dict(PYTHONPATH=str(tmp_path)),
                    check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fails = [
        line for line in proc.stdout.splitlines() if line.startswith('FAIL')
    ]
    assert fails == [
        'FAIL  mmcv ops    mmcv nms / RoIAlign give empty results on cpu'
    ], proc.stdout
    assert 'ok    smt' in proc.stdout  # the other checks still ran
    assert proc.stdout.splitlines()[-1] == \
        'selfcheck FAILED: 1 of 5 checks (mmcv ops)'
    assert 'Traceback' not in proc.stdout + proc.stderr


def _tool_main():
    """``main`` of the tool, imported from its path."""
    return load_tool(TOOL).main


@pytest.mark.parametrize('args, message', [
    (['--seconds', '-1'], '--seconds must be 0 or more (got -1.0)'),
    (['--batch', '0'], '--batch must be at least 1 (got 0)'),
    (['--device', 'tpu:x'], "--device 'tpu:x': not a device; use 'auto', "
     "'cpu', 'cuda' or 'cuda:N'"),
    (['--device', 'cuda:7']
     if torch.cuda.is_available() else ['--device', 'cuda'], 'cuda:0-cuda:' if
     torch.cuda.is_available() else '; use --device cpu for the CPU checks'),
])
def test_bad_arguments_get_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        _tool_main()(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert ': error: --' in err[-1] and message in err[-1], err


def _fatbin(entries):
    """A CUDA fat binary of (kind, arch, payload) entries."""
    body = b''
    for kind, arch, payload in entries:
        header = struct.pack('<HHIQ', kind, 0x101, 64, len(payload))
        header += struct.pack('<IIII', 0, 0, 0, arch).ljust(48, b'\0')
        body += header + payload
    return struct.pack('<IHHQ', 0xBA55ED50, 1, 16, len(body)) + body


def test_fatbin_archs_reads_machine_code_and_ptx(tmp_path):
    lib = tmp_path / '_ext.so'
    lib.write_bytes(b'\x7fELF' + b'x' * 100 +
                    _fatbin([(2, 80, b'a' * 40), (2, 90, b'b' * 8)]) +
                    b'y' * 33 + _fatbin([(1, 90, b'ptx')]) + b'z' * 7)
    assert fatbin_archs(str(lib)) == ({80, 90}, {90})
    lib.write_bytes(b'no kernels at all')
    assert fatbin_archs(str(lib)) == (set(), set())


@pytest.mark.parametrize(
    'arch, elf, ptx, ok',
    [
        (90, {90}, set(), True),
        (86, {80}, set(), True),  # same major, older minor runs
        (90, {80}, set(), False),  # another major does not
        (80, {90}, set(), False),
        (100, {90}, {90}, True),  # PTX is compiled by the driver
        (80, set(), {90}, False),
    ])
def test_runs_on(arch, elf, ptx, ok):
    assert runs_on(arch, elf, ptx) is ok


@pytest.mark.skipif(
    not osp.isfile(DEVICE_WHEEL),
    reason='set SMT_CUDA_MMCV_WHEEL to an mmcv wheel with CUDA ops')
def test_fatbin_archs_of_a_cuda_wheel(tmp_path):
    """The kernel architectures of a CUDA build of mmcv's ops are read
    from its extension (``SMT_CUDA_MMCV_ARCHS``, e.g. ``90``, says which
    to expect)."""
    with zipfile.ZipFile(DEVICE_WHEEL) as wheel:
        name = next(n for n in wheel.namelist() if n.startswith('mmcv/_ext'))
        path = wheel.extract(name, tmp_path)
    elf, ptx = fatbin_archs(path)
    assert elf or ptx
    expected = os.environ.get('SMT_CUDA_MMCV_ARCHS')
    if expected:
        assert elf | ptx == {int(a) for a in expected.split(',')}
