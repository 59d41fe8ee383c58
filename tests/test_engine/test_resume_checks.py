# Copyright (c) SMT-MM contributors. All rights reserved.
"""``--resume`` refuses, with one line naming the file, a checkpoint it
cannot continue from (no epoch, malformed message hub, optimizer state of
another optimizer, of other shapes or not finite), and says in one warning
when the config's schedule is not the checkpoint's."""
import math
import os.path as osp
import sys
import uuid

import pytest
import torch
from helpers import MINI_ARCH, REPO, run_tool

from smt_mm.errors import (CheckpointLoadError, CheckpointMismatchError,
                           SMTError)

DIGITS = osp.join(REPO, 'configs/cls/smt_t_digits.py')
TINY_ARCH = dict(MINI_ARCH, embed_dims=[8, 16, 32, 64], depths=[1, 1, 1, 1])


def write_config(root, max_epochs=2):
    from smt_mm.datasets.digits import make_digits_dataset
    if not osp.isdir(root / 'digits'):
        make_digits_dataset(str(root / 'digits'), 0.5, 0, 8)
    config = root / f'tiny_{max_epochs}.py'
    config.write_text(f'''
_base_ = [{DIGITS!r}]
data_root = {str(root / 'digits') + '/'!r}
model = dict(backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r})),
             head=dict(in_channels=64))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
max_epochs = {max_epochs}
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1),
                     logger=dict(interval=1))
''')
    return str(config)


def build_runner(config, work_dir, **options):
    from smt_mm.launch.config import load_config
    from smt_mm.launch.runner import build_runner
    cfg = load_config(config, options)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'resume_checks_{uuid.uuid4().hex}'
    return build_runner(cfg)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny model trained for two epochs of 2 iterations: its
    ``epoch_1.pth``."""
    root = tmp_path_factory.mktemp('trained')
    config = write_config(root, max_epochs=2)
    build_runner(config, root / 'work').train()
    return root, str(root / 'work' / 'epoch_1.pth')


def resume(trained, tmp_path, edit=None, max_epochs=2, **options):
    """Resume the trained checkpoint (changed by ``edit``) into a runner of
    the config, up to the point where training would start."""
    root, path = trained
    checkpoint = torch.load(path, weights_only=True)
    if edit is not None:
        edit(checkpoint)
    changed = tmp_path / 'changed.pth'
    torch.save(checkpoint, changed)
    runner = build_runner(
        write_config(root, max_epochs), tmp_path / 'work', **options)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.param_schedulers = runner.build_param_scheduler(
        runner.param_schedulers)
    runner.resume(str(changed))
    return runner, str(changed)


def refused(trained, tmp_path, edit, error=SMTError, **options):
    with pytest.raises(error) as err:
        resume(trained, tmp_path, edit, **options)
    message = str(err.value)
    assert '\n' not in message
    assert str(tmp_path / 'changed.pth') in message
    return message


def first_state(checkpoint):
    return checkpoint['optimizer']['state'][0]


def run_log(runner):
    """What the runner has logged (its log file)."""
    import glob
    logs = glob.glob(osp.join(runner.log_dir, '*.log'))
    assert len(logs) == 1
    return open(logs[0]).read()


def test_intact_checkpoint_resumes(trained, tmp_path):
    runner, _ = resume(trained, tmp_path)
    assert runner.epoch == 1 and runner.iter == 2
    assert 'schedule differs' not in run_log(runner)


def test_meta_without_epoch(trained, tmp_path):

    def edit(checkpoint):
        del checkpoint['meta']['epoch']

    message = refused(trained, tmp_path, edit, CheckpointLoadError)
    assert message.endswith(
        ': meta.epoch is missing, so it is not a checkpoint that training '
        'wrote (epoch_N.pth / iter_N.pth); to start from its weights use '
        '--cfg-options load_from=FILE without --resume')


@pytest.mark.parametrize('hub,what', [
    ([1, 2], 'a list, expected a dict of log_scalars, runtime_info and '
     'resumed_keys'),
    (dict(log_scalars={}, runtime_info={}), 'resumed_keys is missing, '
     'expected a dict'),
    (dict(log_scalars={'loss': 3}, runtime_info={}, resumed_keys={}),
     "log_scalars['loss'] is a int, expected a HistoryBuffer"),
    (dict(
        log_scalars={}, runtime_info={'keep_ckpt_ids': 'x'},
        resumed_keys={}), "runtime_info keep_ckpt_ids is 'x', expected a "
     'list of step numbers'),
])
def test_malformed_message_hub(trained, tmp_path, hub, what):

    def edit(checkpoint):
        checkpoint['message_hub'] = hub

    message = refused(trained, tmp_path, edit, CheckpointLoadError)
    assert message.endswith(f': its message_hub is malformed ({what}); it '
                            'cannot be resumed')


def test_malformed_plain_buffer(trained, tmp_path):
    """SMTRunner stores the hub's buffers as tagged plain dicts; one that
    lacks its fields is refused, not a KeyError."""
    from smt_mm.engine.plain_state import TAG

    def edit(checkpoint):
        checkpoint['message_hub']['log_scalars']['loss'] = {
            TAG: 'HistoryBuffer'
        }

    message = refused(trained, tmp_path, edit, CheckpointLoadError)
    assert message.endswith('holds a malformed message hub buffer or numpy '
                            "entry (stored as plain data): KeyError: "
                            "'max_length'")


@pytest.mark.parametrize('entry,what', [
    (dict(
        kind='HistoryBuffer',
        max_length=-5,
        log_history=None,
        count_history=None), 'ValueError: max_length -5 is not a positive '
     'integer'),
    (dict(kind='ndarray', dtype='<U100000', data=torch.zeros(4)),
     "TypeError: __smt_mm_plain__ ndarray entry of dtype '<U100000', not a "
     'plain numeric one'),
])
def test_plain_entries_are_bounded(trained, tmp_path, entry, what):
    """A stored buffer length or numpy dtype is rebuilt only within bounds
    (a string dtype turns a few bytes into gigabytes)."""
    from smt_mm.engine.plain_state import TAG
    entry = dict(entry)
    entry[TAG] = entry.pop('kind')

    def edit(checkpoint):
        checkpoint['message_hub']['log_scalars']['loss'] = entry

    message = refused(trained, tmp_path, edit, CheckpointLoadError)
    assert message.endswith(what)


def test_best_checkpoint_of_another_folder_is_never_deleted(trained, tmp_path):
    """mmengine deletes the resumed ``best_ckpt`` when a better score is
    saved: a path outside this work dir is kept (the deletion gate of
    KeepCheckpointsHook)."""
    victim = tmp_path / 'other_run' / 'best_accuracy_top1_epoch_1.pth'
    victim.parent.mkdir()
    victim.write_bytes(b'another run')

    def edit(checkpoint):
        checkpoint['message_hub']['runtime_info']['best_ckpt'] = str(victim)

    runner, _ = resume(
        trained, tmp_path, edit,
        **{'default_hooks.checkpoint.save_best': 'accuracy/top1'})
    hooks = [
        h for h in runner.hooks
        if type(h).__name__ in ('CheckpointHook', 'KeepCheckpointsHook')
    ]
    for hook in hooks:
        hook.before_train(runner)
    for hook in hooks:
        hook.after_val_epoch(runner, {'accuracy/top1': 100.0})
    assert victim.read_bytes() == b'another run'
    assert f'not deleting {victim}: it is outside the checkpoint folder' \
        in run_log(runner)
    best = runner.message_hub.get_info('best_ckpt')
    assert osp.dirname(best) == str(tmp_path / 'work') and osp.isfile(best)


def test_optimizer_state_of_another_shape(trained, tmp_path):

    def edit(checkpoint):
        first_state(checkpoint)['exp_avg'] = torch.zeros(3)

    message = refused(trained, tmp_path, edit, CheckpointMismatchError)
    assert 'its optimizer state exp_avg of backbone.' in message
    assert 'has shape (3,), the parameter (' in message


def test_adamw_state_into_an_sgd_config(trained, tmp_path):
    message = refused(
        trained,
        tmp_path,
        None,
        CheckpointMismatchError,
        optim_wrapper=dict(
            optimizer=dict(
                _delete_=True,
                type='SGD',
                lr=0.01,
                momentum=0.9,
                weight_decay=1e-4)))
    assert ': its optimizer was saved by another optimizer than the ' \
        "config's SGD: parameter group 0 has amsgrad, betas, eps" in message
    assert 'where SGD has dampening, momentum, nesterov' in message


@pytest.mark.parametrize('value', [math.nan, math.inf])
def test_non_finite_optimizer_state(trained, tmp_path, value):

    def edit(checkpoint):
        first_state(checkpoint)['exp_avg'][0] = value

    message = refused(trained, tmp_path, edit, CheckpointLoadError)
    assert 'holds NaN or infinite values in optimizer.state[backbone.' \
        in message and '.exp_avg' in message


def test_changed_schedule_is_said_once(trained, tmp_path):
    """The checkpoint was trained with max_epochs=2, which its cosine
    schedule ends at (iteration 4); the config now says 4 epochs."""
    runner, _ = resume(trained, tmp_path, max_epochs=4)
    warnings = [
        line for line in run_log(runner).splitlines()
        if 'training schedule differs' in line
    ]
    assert len(warnings) == 1
    assert 'CosineAnnealingLR #1 T_max 2 -> 6; CosineAnnealingLR #1 end 4 ' \
        '-> 8 [checkpoint -> config]' in warnings[0]
    assert 'the learning rate follows the old schedule' in warnings[0]


@pytest.mark.slow
def test_resume_refusal_through_train(tmp_path):
    """Through tools/train.py: NaN in the optimizer state stops the resume
    with one line and nothing is trained."""
    config = write_config(tmp_path, max_epochs=2)
    run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        tmp_path / 'trained'
    ])
    path = tmp_path / 'epoch_1.pth'
    checkpoint = torch.load(
        tmp_path / 'trained' / 'epoch_1.pth', weights_only=True)
    first_state(checkpoint)['exp_avg'].fill_(math.nan)
    torch.save(checkpoint, path)
    work = tmp_path / 'work'
    proc = run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir', work,
        '--resume', path
    ],
                    check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: checkpoint {path} holds NaN or infinite '
                           'values in optimizer.state[backbone.')
    assert not (work / 'epoch_2.pth').exists()
