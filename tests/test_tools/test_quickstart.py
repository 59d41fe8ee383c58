# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/quickstart.py as a user sees it: a progress line per step instead
of mmengine's config dump, the full output in the work dir, the
validation set evaluated once, ``--resume`` accepted where its hint names
it, and the mAP range it states."""
import importlib.util
import io
import os.path as osp
import re

import pytest
from helpers import REPO, write_tiny_det_config

TRAIN_LINES = [
    '12/02 03:05:34 - mmengine - INFO - Epoch(train)  [1][20/60]  base_lr: '
    '8.0000e-05 lr: 8.0000e-05  eta: 2:59:56  time: 20.5808  data_time: '
    '0.0574  grad_norm: 9.7817  loss: 2.9396  loss_rpn_cls: 0.6888',
    '12/02 03:06:34 - mmengine - INFO - Epoch(train)  [3][60/60]  base_lr: '
    '4.0000e-04 lr: 4.0000e-04  eta: 0:09:56  time: 0.9  data_time: '
    '0.0574  grad_norm: 3.1  loss: 1.2345  loss_rpn_cls: 0.1',
]


def load_quickstart():
    spec = importlib.util.spec_from_file_location(
        'smt_quickstart', osp.join(REPO, 'tools', 'quickstart.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


quickstart = load_quickstart()


def test_training_does_not_validate_the_evaluation_step_does():
    args = quickstart.parse_args([])
    command = quickstart.train_command(args, 'python')
    options = command[command.index('--cfg-options') + 1:]
    # mmengine validates after the last epoch whatever val_interval says;
    # without a val loop the test step is the one evaluation
    for option in ('val_dataloader=None', 'val_cfg=None',
                   'val_evaluator=None'):
        assert option in options
    dist = quickstart.train_command(
        quickstart.parse_args(['--nproc', '2']), 'python')
    assert 'val_cfg=None' in dist and dist[:2] == [
        'bash', 'tools/dist_train.sh'
    ]


def test_resume_is_accepted_where_the_hint_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(quickstart, 'REPO', str(tmp_path))
    work = tmp_path / 'work_dirs' / 'quickstart'
    work.mkdir(parents=True)
    (work / 'epoch_10.pth').write_bytes(b'')
    with pytest.raises(SystemExit) as refused:
        quickstart.main(['--work-dir', 'work_dirs/quickstart'])
    message = str(refused.value.code)
    assert '\n' not in message and 'earlier quickstart run' in message
    for flag in re.findall(r'--[a-z-]+', message):
        quickstart.parse_args([flag] if flag != '--work-dir' else
                              [flag, 'x'])  # every flag named is accepted
    args = quickstart.parse_args(['--resume'])
    assert '--resume' in quickstart.train_command(args, 'python')
    with pytest.raises(SystemExit):
        quickstart.parse_args(['--resume', '--overwrite'])


def test_progress_line_shows_iterations_eta_loss_and_map():
    watcher = quickstart.TrainWatcher(max_epochs=10)
    assert watcher.text() == 'building the model, checking the data...'
    for line in TRAIN_LINES:
        assert watcher.update(line)
    text = watcher.text()
    assert '180/600 it' in text and 'epoch 3/10' in text
    assert 'loss 1.234' in text and re.search(r'ETA \d+:\d\d', text)
    assert not watcher.update('12/02 - mmengine - INFO - paramwise_options '
                              '-- backbone.stages.3.norm.bias:lr=0.0004')
    test = quickstart.TestWatcher()
    test.update('12/02 - mmengine - INFO - Epoch(test) [ 5/15]    eta: 0:01')
    assert '5/15 batches' in test.text()
    test.update('12/02 - mmengine - INFO - Epoch(test) [15/15]    '
                'coco/bbox_mAP: 0.5960  coco/bbox_mAP_50: 0.7440  '
                'coco/bbox_mAP_75: 0.6850')
    assert test.text().endswith('15/15 batches  bbox mAP@0.5 0.744')


def test_progress_in_a_log_is_a_line_per_tenth():
    stream = io.StringIO()  # not a terminal
    progress = quickstart.Progress(stream)
    for done in range(0, 601, 10):
        progress.show(f'{done}/600', done, 600)
    progress.end('done')
    lines = stream.getvalue().splitlines()
    assert len(lines) == 12 and lines[-1] == 'done'


def test_results_state_the_measured_range(capsys):
    metrics = {
        'coco/bbox_mAP_50': 0.713,
        'coco/segm_mAP_50': 0.72,
        'coco/bbox_mAP': 0.55,
        'coco/segm_mAP': 0.6
    }
    quickstart.print_results(metrics, 'epoch_10.pth', 'w/t/t.log', 'w/q.log')
    printed = capsys.readouterr().out
    assert ('coco/bbox_mAP_50   0.713  (bar 0.5: ok; 2-core CPU runs gave '
            '0.71-0.75)') in printed
    readme = open(osp.join(REPO, 'README.md')).read()
    low, high = quickstart.MEASURED['coco/bbox_mAP_50']
    assert f'{low:.2f}–{high:.2f}' in readme  # README and script agree


@pytest.mark.slow
def test_quickstart_screen_is_short_and_the_log_is_full(
        tmp_path, monkeypatch, capsys):
    """One epoch of a tiny model through the real steps."""
    config = write_tiny_det_config(
        tmp_path, num_train=4, batch_size=2, max_epochs=1)
    monkeypatch.setattr(quickstart, 'CONFIG', config)
    monkeypatch.setattr(quickstart, 'DATA', str(tmp_path))
    work = tmp_path / 'work'
    quickstart.main(['--work-dir', str(work)])
    screen = capsys.readouterr().out
    assert len(screen.splitlines()) <= 25, screen
    assert 'paramwise_options' not in screen and 'Config:' not in screen
    assert 'Warning' not in screen
    assert '[2/4] train' in screen and '[3/4] evaluate' in screen
    assert 'Results (synthetic validation split' in screen
    log = (work / 'quickstart.log').read_text()
    assert 'paramwise_options' in log and 'Epoch(train)' in log
    # evaluated once: by the test step, not also after training
    assert 'Epoch(val)' not in log and log.count('coco/bbox_mAP_50:') == 1


def test_a_killed_step_left_with_a_worker_does_not_hang(tmp_path):
    """The step exits; a child it left behind keeps the pipe open."""
    import subprocess
    import sys
    import time
    code = ('import subprocess, sys; print("step", flush=True); '
            'subprocess.Popen([sys.executable, "-c", '
            '"import time; time.sleep(30)"]); sys.exit(3)')
    proc = subprocess.Popen([sys.executable, '-c', code],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)
    started = time.monotonic()
    assert list(quickstart.output_lines(proc, grace=0.5)) == ['step\n']
    assert time.monotonic() - started < 10 and proc.wait() == 3


def test_a_failed_step_shows_its_error_line_or_what_stopped_it():
    lines = [
        'x' * 300, 'Traceback (most recent call last):',
        'error: work dir w holds checkpoints of an earlier run'
    ]
    assert quickstart.failure_detail(lines, 1) == lines[-1]
    assert quickstart.failure_detail(lines[:2],
                                     -9).startswith('stopped by signal 9')
    shown = quickstart.failure_detail(lines[:2], 1).splitlines()
    assert shown[0] == 'x' * 157 + '...' and len(shown) == 2
