# Copyright (c) SMT-MM contributors. All rights reserved.
"""Nothing the user has is replaced, through the tools: segmentation
prediction maps never land on existing files or in a dataset folder, the
config dump never replaces the user's config (nor writes through a symlink),
``plot_logs.py --out`` keeps an existing file, one training run per work
dir, a failed save keeps the previous checkpoint."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import MINI_ARCH, REPO, load_tool, run_tool, tool_error

from smt_mm.engine.config_dump import DUMP_MARK
from smt_mm.errors import LaunchError
from smt_mm.launch.workdir import LOCK_NAME

SEG = 'configs/seg/smt_t_upernet_synth.py'
DIGITS = os.path.join(REPO, 'configs/cls/smt_t_digits.py')


def one_line_error(args, env=None):
    proc = run_tool([sys.executable, *args], check=False, timeout=600, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert 'Traceback' not in output, output[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: '), output[-3000:]
    return last


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    root = tmp_path_factory.mktemp('ade')
    run_tool([
        sys.executable, 'tools/misc/make_synthetic_data.py', 'ade',
        str(root), '--num-train', '2', '--num-val', '2'
    ])
    return root


def seg_test(ade, tmp_path, out, *extra):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'x')  # never read: the outputs fail first
    return one_line_error([
        'tools/test.py', SEG,
        str(checkpoint), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), *extra, '--cfg-options', f'test_dataloader.dataset.'
        f'data_root={ade}/'
    ])


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_seg_out_refuses_the_dataset_annotation_folder(ade, tmp_path):
    annotations = ade / 'annotations' / 'validation'
    before = snapshot(annotations)
    last = seg_test(ade, tmp_path, annotations)
    assert f'--out {annotations} is a folder of the dataset' in last
    assert snapshot(annotations) == before


def seg_test_error(ade, tmp_path, *args):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'x')
    return tool_error('tools/test.py', [
        SEG, checkpoint, '--work-dir', tmp_path / 'work', *args,
        '--cfg-options', f'test_dataloader.dataset.data_root={ade}/'
    ])


def test_seg_out_refuses_existing_prediction_maps(ade, tmp_path):
    out = tmp_path / 'preds'
    out.mkdir()
    (out / 'val_0000.png').write_bytes(b'mine')
    message = seg_test_error(ade, tmp_path, '--out', out)
    assert f'--out {out} already holds 1 PNG file(s) (e.g. val_0000.png)' \
        in message and '--overwrite' in message
    assert (out / 'val_0000.png').read_bytes() == b'mine'


@pytest.mark.parametrize('folder', ['images/validation', '.'])
def test_show_dir_refuses_a_dataset_folder(ade, tmp_path, folder):
    path = os.path.normpath(ade / folder)
    message = seg_test_error(ade, tmp_path, '--show-dir', path)
    assert message.startswith(f'--show-dir {path} is a folder of the '
                              'dataset')


def test_new_folder_inside_the_data_root_is_fine(ade, tmp_path):
    from mmengine.config import Config
    tool = load_tool('tools/test.py')
    cfg = Config.fromfile(os.path.join(REPO, SEG))
    cfg.test_dataloader.dataset.data_root = f'{ade}/'
    args = tool.parse_args([SEG, 'x.pth', '--out', str(ade / 'preds')])
    tool.check_output_folders(args, cfg, 'mmseg')  # no error
    args = tool.parse_args(
        [SEG, 'x.pth', '--out',
         str(ade / 'annotations'), '--overwrite'])
    tool.check_output_folders(args, cfg, 'mmseg')  # the user insists


def test_plot_logs_keeps_an_existing_file(tmp_path):
    out = tmp_path / 'curves.png'
    out.write_bytes(b'my picture')
    last = one_line_error(
        ['tools/analysis/plot_logs.py',
         str(tmp_path), '--out',
         str(out)])
    assert last == f'error: --out {out} exists; pass --overwrite to ' \
        'replace it, or choose another path'
    assert out.read_bytes() == b'my picture'


def test_plot_logs_overwrite_replaces(tmp_path):
    plot_logs = load_tool('tools/analysis/plot_logs.py')
    work = tmp_path / 'run' / '20240101_000000' / 'vis_data'
    work.mkdir(parents=True)
    (work / 'scalars.json').write_text('{"loss": 1.0, "iter": 1, "step": 1}\n'
                                       '{"loss": 0.5, "iter": 2, "step": 2}\n')
    out = tmp_path / 'curves.png'
    out.write_bytes(b'my picture')
    plot_logs.main([str(tmp_path / 'run'), '--out', str(out), '--overwrite'])
    assert out.read_bytes()[:4] == b'\x89PNG'


def test_second_training_into_a_locked_work_dir_stops(tmp_path):
    from smt_mm.datasets.digits import make_digits_dataset
    from smt_mm.launch.workdir import lock_work_dir, release_work_dir
    make_digits_dataset(str(tmp_path / 'digits'), 0.5, 0, 4)
    work = tmp_path / 'work'
    lock_work_dir(str(work))  # as a run in progress holds it
    try:
        last = one_line_error([
            'tools/train.py', DIGITS, '--work-dir',
            str(work), '--cfg-options', *[
                f'{split}.dataset.data_root={tmp_path / "digits"}/'
                for split in ('train_dataloader', 'val_dataloader')
            ]
        ])
    finally:
        release_work_dir(str(work))
    assert last == (f'error: work dir {work} is in use by another training '
                    f'run (pid {os.getpid()}): two runs would mix their '
                    'checkpoints; wait for it to end, or choose another '
                    '--work-dir')
    assert sorted(p.name for p in work.iterdir()) == [LOCK_NAME]


def test_a_killed_run_leaves_no_lock(tmp_path):
    """The kernel frees the lock of a killed run at once, even while a data
    worker forked from it lingers (a worker notices its parent is gone only
    seconds later)."""
    from smt_mm.launch.workdir import lock_work_dir, release_work_dir
    code = textwrap.dedent(f'''
        import os, sys, time
        sys.path.insert(0, {REPO!r})
        from smt_mm.launch.workdir import lock_work_dir
        lock_work_dir({str(tmp_path)!r})
        if os.fork() == 0:
            time.sleep(600)
        print('locked', flush=True)
        time.sleep(600)
    ''')
    proc = subprocess.Popen([sys.executable, '-c', code],
                            stdout=subprocess.PIPE,
                            text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == 'locked'
        with pytest.raises(
                LaunchError,
                match='in use by another training '
                f'run \\(pid {proc.pid}\\)'):
            lock_work_dir(str(tmp_path))
        proc.send_signal(signal.SIGKILL)  # its forked child lives on
        proc.wait()
        lock_work_dir(str(tmp_path))
        release_work_dir(str(tmp_path))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_work_dir_name_too_long(tmp_path, tool):
    work = tmp_path / ('w' * 300)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'x')
    message = tool_error(tool, [
        DIGITS, *([checkpoint] if tool.endswith('test.py') else []),
        '--work-dir', work
    ])
    assert message.startswith(f'work dir {work} cannot be created: the '
                              'folder name wwww')
    assert 'is 300 bytes long and the file system allows 255' in message
    assert not os.path.exists(work)


def test_bad_run_setting_is_one_line(tmp_path):
    last = one_line_error([
        'tools/train.py', DIGITS, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        'train_dataloader.batch_size=0'
    ])
    assert last == ('error: train_dataloader.batch_size must be a whole '
                    'number of at least 1, got 0')


@pytest.mark.parametrize('option,message', [
    ('optim_wrapper.optimizer.lr=nan',
     'optim_wrapper.optimizer.lr must be a finite number, got nan'),
    ('optim_wrapper.optimizer.lr=-1',
     'optim_wrapper.optimizer.lr must not be negative, got -1'),
    ('val_dataloader.num_workers=-1',
     'val_dataloader.num_workers must be a whole number of at least 0, '
     'got -1'),
    ('load_strict=None', 'load_strict must be True or False, got None'),
    ('load_strict=0', 'load_strict must be True or False, got 0'),
    ('load_strict=[]', 'load_strict must be True or False, got []'),
    ('optim_wrapper.optimizer.lr=abc',
     "optim_wrapper.optimizer.lr must be a number, got 'abc'"),
    ('optim_wrapper.clip_grad.max_norm=-5',
     'optim_wrapper.clip_grad.max_norm must be a finite number above 0, '
     'got -5'),
    ('train_cfg.max_epochs=0',
     'train_cfg.max_epochs must be a whole number of at least 1, got 0'),
    ('train_cfg.val_interval=0',
     'train_cfg.val_interval must be a whole number of at least 1, got 0'),
    ('default_hooks.logger.interval=0', 'default_hooks.logger.interval must '
     'be a whole number of at least 1, got 0'),
    ('randomness.seed=abc',
     "randomness.seed must be a whole number or None, got 'abc'"),
])
def test_bad_run_settings(tmp_path, option, message):
    assert tool_error(
        'tools/train.py',
        [DIGITS, '--work-dir', tmp_path / 'work', '--cfg-options', option
         ]) == message
    assert not (tmp_path / 'work').exists()


# 4 stages of 8-64 channels, one block each; the tiny preset's other settings
TINY_ARCH = dict(MINI_ARCH, embed_dims=[8, 16, 32, 64], depths=[1, 1, 1, 1])


def write_digits_config(root, max_epochs=1, extra=''):
    """A tiny SMT on 8 digits, batch 4 (2 iterations an epoch); returns the
    config path. Its folder is ``root``."""
    run_tool([
        sys.executable, 'tools/misc/make_digits_dataset.py',
        str(root / 'digits'), '--limit', '8'
    ])
    config = root / 'tiny_digits.py'
    config.write_text(f'''# my config: never to be replaced
_base_ = [{DIGITS!r}]
data_root = {str(root / 'digits') + '/'!r}
model = dict(backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r})),
             head=dict(in_channels=64))
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={max_epochs}, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1),
                     logger=dict(interval=1))
{extra}''')
    return config


@pytest.mark.slow
def test_work_dir_holding_the_config(tmp_path):
    """``--work-dir`` is the folder of the config: train and test leave the
    config as it is (and a symlink at the dump's name), dumping theirs
    into the run's timestamped folder."""
    config = write_digits_config(tmp_path)
    mine = config.read_text()
    run_tool([
        sys.executable, 'tools/train.py',
        str(config), '--work-dir',
        str(tmp_path)
    ])
    assert config.read_text() == mine
    dumps = list(tmp_path.glob('2*/tiny_digits.py'))
    assert len(dumps) == 1
    assert dumps[0].read_text().startswith(DUMP_MARK + '\n')

    # tools/test.py, with the config reached through a symlink at the
    # dump's name
    linked = tmp_path / 'linked'
    linked.mkdir()
    (linked / 'tiny_digits.py').symlink_to(config)
    run_tool([
        sys.executable, 'tools/test.py',
        str(linked / 'tiny_digits.py'),
        str(tmp_path / 'epoch_1.pth'), '--work-dir',
        str(linked)
    ])
    assert (linked / 'tiny_digits.py').is_symlink()
    assert config.read_text() == mine
    assert len(list(linked.glob('2*/tiny_digits.py'))) == 1

    # a dump of ours is replaced in place by the next run
    work = tmp_path / 'work'
    for _ in range(2):
        run_tool([
            sys.executable, 'tools/test.py',
            str(config),
            str(tmp_path / 'epoch_1.pth'), '--work-dir',
            str(work)
        ])
    assert (work / 'tiny_digits.py').read_text().startswith(DUMP_MARK)
    assert not list(work.glob('2*/tiny_digits.py'))


# Makes the fsync of a checkpoint being saved as epoch_2.pth fail as a full
# disk would (the other writes go through).
DISK_FULL = '''
import errno, os
_fsync = os.fsync
def fsync(fd):
    try:
        name = os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        name = ''
    if '.epoch_2.pth.' in os.path.basename(name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _fsync(fd)
os.fsync = fsync
'''


@pytest.mark.slow
def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path):
    from smt_mm.checkpoint import is_complete_checkpoint
    config = write_digits_config(tmp_path, max_epochs=2)
    inject = tmp_path / 'inject'
    inject.mkdir()
    (inject / 'sitecustomize.py').write_text(DISK_FULL)
    work = tmp_path / 'work'
    last = one_line_error(
        ['tools/train.py',
         str(config), '--work-dir',
         str(work)],
        env=dict(PYTHONPATH=f'{inject}{os.pathsep}{REPO}'))
    assert last.startswith('error: training stopped, writing failed: No '
                           'space left on device (the file system is full')
    assert f'the checkpoints already in {work} are complete' in last
    # max_keep_ckpts=1: mmengine removes epoch_1.pth before saving
    # epoch_2.pth; the removal waits until the new one is saved
    assert is_complete_checkpoint(str(work / 'epoch_1.pth'))
    assert not (work / 'epoch_2.pth').exists()
    assert not list(work.glob('.*.tmp'))
    # space freed: --resume continues, and the old checkpoint goes once the
    # new one is saved
    run_tool([
        sys.executable, 'tools/train.py',
        str(config), '--work-dir',
        str(work), '--resume'
    ])
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_2.pth']


def test_machine_errors_are_one_line_others_keep_their_traceback():
    import errno

    from smt_mm.launch.cli import run_cli

    def full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'x.pth')

    with pytest.raises(SystemExit) as exit_:
        run_cli(full)
    assert exit_.value.code == ('error: No space left on device: x.pth (the '
                                'file system is full; free some space)')

    def bug():
        raise FileNotFoundError(errno.ENOENT, 'No such file', 'y')

    with pytest.raises(FileNotFoundError):
        run_cli(bug)


@pytest.mark.slow
def test_image_that_does_not_decode_stops_training_with_one_line(tmp_path):
    """Random bytes under a .png name, loaded by the shipped configs' data
    worker: one line naming the file."""
    config = write_digits_config(tmp_path)
    image = sorted((tmp_path / 'digits' / 'train').glob('*/*.png'))[0]
    image.write_bytes(os.urandom(300))
    last = one_line_error(
        ['tools/train.py',
         str(config), '--work-dir',
         str(tmp_path / 'work')])
    assert last == (f'error: cannot read image {image}: it does not decode '
                    'as an image (damaged, or not an image despite its '
                    'name); replace it, or remove it and its annotation')
