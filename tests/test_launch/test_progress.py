# Copyright (c) SMT-MM contributors. All rights reserved.
"""Progress from mmengine's output: iterations, loss and mAP; rich's bar
on a terminal, only plain closing lines elsewhere, the log complete; a step
that fails says why, and one whose left-behind child keeps the pipe open
does not hang."""
import io
import re
import subprocess
import sys
import time

import pytest
from rich.console import Console

from smt_mm.launch import progress

TRAIN_LINES = [
    '12/02 03:05:34 - mmengine - INFO - Epoch(train)  [1][20/60]  base_lr: '
    '8.0000e-05 lr: 8.0000e-05  eta: 2:59:56  time: 20.5808  data_time: '
    '0.0574  grad_norm: 9.7817  loss: 2.9396  loss_rpn_cls: 0.6888',
    '12/02 03:06:34 - mmengine - INFO - Epoch(train)  [3][60/60]  base_lr: '
    '4.0000e-04 lr: 4.0000e-04  eta: 0:09:56  time: 0.9  data_time: '
    '0.0574  grad_norm: 3.1  loss: 1.2345  loss_rpn_cls: 0.1',
]


def test_progress_shows_iterations_loss_and_map():
    watcher = progress.TrainWatcher(max_epochs=10)
    assert watcher.text() == 'building the model, checking the data...'
    for line in TRAIN_LINES:
        assert watcher.update(line)
    assert (watcher.done, watcher.total) == (180, 600)
    assert watcher.text() == '180/600 it  epoch 3/10  loss 1.234'
    assert not watcher.update('12/02 - mmengine - INFO - paramwise_options '
                              '-- backbone.stages.3.norm.bias:lr=0.0004')
    test = progress.TestWatcher()
    test.update('12/02 - mmengine - INFO - Epoch(test) [ 5/15]    eta: 0:01')
    assert test.text() == '5/15 batches'
    test.update('12/02 - mmengine - INFO - Epoch(test) [15/15]    '
                'coco/bbox_mAP: 0.5960  coco/bbox_mAP_50: 0.7440  '
                'coco/bbox_mAP_75: 0.6850')
    assert test.text() == '15/15 batches  bbox mAP@0.5 0.744'


# the step's closing line, after its bar if any
CLOSING = re.compile(r'\[1/1\] train     180/600 it  epoch 3/10  loss 1\.234  '
                     r'\(0:00:0\d\)\n?$')


def train_step(tmp_path, console):
    """A step printing mmengine's training lines, shown on ``console``."""
    steps = progress.Steps(
        str(tmp_path / 'steps.log'), str(tmp_path), total=1, console=console)
    code = ('import sys, time\n'
            f'for line in {TRAIN_LINES!r}:\n'
            '    print(line, flush=True); time.sleep(0.3)\n')
    steps.run('train', [sys.executable, '-c', code],
              progress.TrainWatcher(max_epochs=10))
    return console.file.getvalue()


def test_a_terminal_shows_rich_bar_then_the_closing_line(tmp_path):
    console = Console(
        file=io.StringIO(),
        force_terminal=True,
        width=120,
        markup=False,
        highlight=False)
    shown = train_step(tmp_path, console)
    assert '\x1b' in shown and '━' in shown and 'ETA' in shown
    assert '180/600 it  epoch 3/10' in shown
    assert CLOSING.search(shown.splitlines()[-1])


def test_elsewhere_only_plain_closing_lines_and_the_log_is_full(tmp_path):
    shown = train_step(tmp_path, Console(file=io.StringIO()))  # no terminal
    assert CLOSING.fullmatch(shown)
    log = (tmp_path / 'steps.log').read_text()
    assert all(line in log for line in TRAIN_LINES)


def test_a_killed_step_left_with_a_worker_does_not_hang(tmp_path):
    """The step exits; a child it left behind keeps the pipe open."""
    code = ('import subprocess, sys; print("step", flush=True); '
            'subprocess.Popen([sys.executable, "-c", '
            '"import time; time.sleep(30)"]); sys.exit(3)')
    proc = subprocess.Popen([sys.executable, '-c', code],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)
    started = time.monotonic()
    assert list(progress.output_lines(proc, grace=0.5)) == ['step\n']
    assert time.monotonic() - started < 10 and proc.wait() == 3


def test_a_failed_step_shows_its_error_line_or_what_stopped_it():
    lines = [
        'x' * 300, 'Traceback (most recent call last):',
        'error: work dir w holds checkpoints of an earlier run'
    ]
    assert progress.failure_detail(lines, 1) == lines[-1]
    assert progress.failure_detail(lines[:2],
                                   -9).startswith('stopped by signal 9')
    shown = progress.failure_detail(lines[:2], 1).splitlines()
    assert shown[0] == 'x' * 157 + '...' and len(shown) == 2


def test_steps_log_everything_and_a_failure_raises_with_its_error(tmp_path):
    log = tmp_path / 'steps.log'
    screen = io.StringIO()
    steps = progress.Steps(
        str(log), str(tmp_path), total=2, console=Console(file=screen))
    lines = steps.run(
        'hello', [sys.executable, '-c', 'print("hi")'],
        summary=lambda lines: lines[-1])
    assert lines == ['hi'] and screen.getvalue().startswith('[1/2] hello ')
    fail = 'print("error: no data"); raise SystemExit(4)'
    with pytest.raises(progress.StepFailed) as failed:
        steps.run('broken', [sys.executable, '-c', fail])
    assert failed.value.detail == 'error: no data'
    assert str(failed.value) == (f'broken failed (exit status 4); its full '
                                 f'output is in {log}')
    assert '[2/2] broken    failed after' in screen.getvalue()
    # the log holds each command line and all its output
    assert log.read_text().endswith('SystemExit(4)\nerror: no data\n')
    assert '\nhi\n' in log.read_text()
