# Copyright (c) SMT-MM contributors. All rights reserved.
"""Bad launcher arguments are one line: the GPU count of
tools/dist_train.sh / dist_test.sh, get_flops.py's --shape."""
import sys

import pytest
from helpers import run_tool

CONFIG = 'configs/cls/smt_t_digits.py'


@pytest.mark.parametrize('gpus', ['two', '0', '', '-1', '1.5'])
@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_gpu_count_must_be_a_positive_integer(script, gpus):
    args = [CONFIG] + (['ckpt.pth'] if script == 'dist_test.sh' else [])
    proc = run_tool(['bash', f'tools/{script}', *args, gpus], check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"error: GPUS must be a positive integer (processes per node, e.g. "
        f"2), got '{gpus}'; usage: tools/{script} CONFIG ")


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_missing_arguments_print_the_usage(script):
    proc = run_tool(['bash', f'tools/{script}', CONFIG], check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        'usage: tools/dist_train.sh CONFIG GPUS [train.py args]'
        if script == 'dist_train.sh' else
        'usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]')


def test_get_flops_refuses_a_third_shape_value():
    proc = run_tool([
        sys.executable, 'tools/analysis/get_flops.py', CONFIG, '--shape',
        '100', '224', '300'
    ],
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        'error: --shape takes H or H W, got 3 values (100 224 300)')
