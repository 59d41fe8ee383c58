# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/quickstart.py as a user sees it: a progress line per step instead
of mmengine's config dump, the full output in the work dir, the
validation set evaluated once, ``--resume`` accepted where its hint names
it, and the mAP range it states. The progress lines themselves are tested
in tests/test_launch/test_progress.py."""
import os.path as osp
import re

import pytest
from helpers import REPO, load_tool, write_tiny_det_config


def load_quickstart():
    return load_tool('tools/quickstart.py')


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
    (work / 'epoch_6.pth').write_bytes(b'')
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


def test_a_failed_step_ends_the_quickstart_with_its_error(
        tmp_path, monkeypatch):

    def fail(steps, args, py):
        raise quickstart.StepFailed('train', 1, 'error: bad data', 'w/q.log')

    monkeypatch.setattr(quickstart, 'REPO', str(tmp_path))
    monkeypatch.setattr(quickstart, 'run_steps', fail)
    with pytest.raises(SystemExit) as failed:
        quickstart.main(['--work-dir', 'w'])
    assert failed.value.code == ('error: bad data\nquickstart: train failed '
                                 '(exit status 1); its full output is in '
                                 'w/q.log')


def test_results_state_the_measured_range(capsys):
    metrics = {
        'coco/bbox_mAP_50': 0.713,
        'coco/segm_mAP_50': 0.72,
        'coco/bbox_mAP': 0.55,
        'coco/segm_mAP': 0.6
    }
    quickstart.print_results(metrics, 'epoch_6.pth', 'w/t/t.log', 'w/q.log')
    printed = capsys.readouterr().out
    assert ('coco/bbox_mAP_50   0.713  (bar 0.5: ok; 2-core CPU runs gave '
            '0.54-0.65)') in printed
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
