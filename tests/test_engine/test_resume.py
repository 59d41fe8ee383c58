# Copyright (c) SMT-MM contributors. All rights reserved.
"""A training run killed mid-way (epoch- or iteration-based, data loaded in
the main process or by a persistent worker) resumes and repeats exactly the
losses of an uninterrupted run; checkpoint writes are atomic."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch
from helpers import REPO, run_tool, write_tiny_det_config
from mmengine.config import Config

from smt_mm.checkpoint import (AtomicLocalBackend, is_complete_checkpoint,
                               read_checkpoint)
from smt_mm.launch.resume import latest_complete_checkpoint, set_resume

TRAIN = [sys.executable, 'tools/train.py']
# The log line after which the run is killed: epoch 2, iteration 1 of 2
# (epoch 1's checkpoint saved); iteration 3 of 6 (iteration 2's saved).
KILL_AFTER = {'epoch': 'Epoch(train) [2][1/', 'iter': 'Iter(train) [3/6]'}
ITER_BASED = """
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=6,
                 val_interval=100)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False,
                        begin=0, end=6)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=2,
                                     max_keep_ckpts=5))
log_processor = dict(by_epoch=False)
"""
# The shipped configs' loading: one worker that lives for the whole run.
PERSISTENT_WORKER = """
train_dataloader.update(num_workers=1, persistent_workers=True)
"""
# Iteration-based with an endless sampler, as the shipped segmentation
# config (mmengine's InfiniteSampler keeps one index stream for its life).
INFINITE_SAMPLER = """
train_dataloader.update(sampler=dict(type='InfiniteSampler', shuffle=True))
"""


def logged_losses(work_dir):
    """{global iteration: {loss name: value}} from every run's scalars."""
    found = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'loss' in entry:
                    found[entry['iter']] = {
                        k: v
                        for k, v in entry.items()
                        if k.startswith('loss') or k in ('grad_norm', 'acc')
                    }
    return found


def train_until_killed(config, work_dir, marker):
    """Start training and SIGKILL it once ``marker`` is logged."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.Popen(
        TRAIN + [config, '--work-dir', str(work_dir)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    try:
        for line in proc.stdout:
            if marker in line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, 'run ended before the kill'


@pytest.mark.slow
@pytest.mark.parametrize('workers', [0, 1])
@pytest.mark.parametrize('loop', ['epoch', 'iter'])
def test_killed_run_resumes_with_identical_losses(tmp_path, loop, workers):
    config = write_tiny_det_config(
        tmp_path / 'data',
        num_train=4,
        batch_size=2,
        max_epochs=3,
        extra=(ITER_BASED if loop == 'iter' else '') +
        (PERSISTENT_WORKER if workers else '') +
        (INFINITE_SAMPLER if loop == 'iter' and workers else ''))
    reference = tmp_path / 'reference'
    run_tool(TRAIN + [config, '--work-dir', str(reference)])
    expected = logged_losses(reference)
    assert sorted(expected) == list(range(1, 7))  # 6 iterations

    work_dir = tmp_path / 'killed'
    train_until_killed(config, work_dir, KILL_AFTER[loop])
    last = 'epoch_3.pth' if loop == 'epoch' else 'iter_6.pth'
    assert not osp.exists(work_dir / last)
    proc = run_tool(TRAIN + [config, '--work-dir', str(work_dir), '--resume'])
    resumed_at = 'epoch: 1, iter: 2' if loop == 'epoch' else \
        'epoch: 0, iter: 2'
    assert f'resumed {resumed_at}' in proc.stdout + proc.stderr
    resumed = logged_losses(work_dir)
    # Iteration 3 ran twice (before the kill and after the resume); the
    # files are read in time order, so the resumed run's values are kept.
    assert sorted(resumed) == list(range(1, 7))
    for it in range(3, 7):
        assert resumed[it] == expected[it], f'iteration {it} differs'
    final = read_checkpoint(str(work_dir / last))
    ref = read_checkpoint(str(reference / last))
    for key, value in ref['state_dict'].items():
        assert torch.equal(final['state_dict'][key], value), key


def _write_with_file_size_limit(path, size, limit):
    """In a child process limited to ``limit`` bytes per file, write
    ``size`` bytes through the checkpoint backend: the kernel kills it with
    SIGXFSZ in the middle of the write."""
    code = (
        'import resource, signal, sys\n'
        # Python ignores SIGXFSZ; restore the kernel's default: terminate.
        'signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n'
        f'sys.path.insert(0, {REPO!r})\n'
        'from smt_mm.checkpoint import AtomicLocalBackend\n'
        f'resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n'
        f'AtomicLocalBackend().put(b"n" * {size}, {str(path)!r})\n')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=REPO,
                          capture_output=True)
    return proc.returncode


def test_killed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.ones(4)}}, path)
    old = path.read_bytes()
    rc = _write_with_file_size_limit(path, size=4 << 20, limit=1 << 20)
    assert rc == -signal.SIGXFSZ  # killed mid-write, not a clean error
    assert path.read_bytes() == old
    assert is_complete_checkpoint(str(path))
    # The only trace is a hidden temporary file that no resume picks up.
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert all(n.startswith('.epoch_1.pth.') for n in leftovers)
    assert latest_complete_checkpoint(str(tmp_path)) == str(path)


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'

    def crash(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(OSError, match='disk full'):
        AtomicLocalBackend().put(b'x' * 100, path)
    assert list(tmp_path.iterdir()) == []


def test_resume_auto_skips_a_truncated_checkpoint(tmp_path):
    """A truncated newest checkpoint (e.g. left by an older non-atomic save)
    named in ``last_checkpoint`` is passed over for the newest whole one."""
    good, bad = tmp_path / 'epoch_1.pth', tmp_path / 'epoch_2.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, good)
    torch.save({'state_dict': {'w': torch.ones(1000)}}, bad)
    bad.write_bytes(bad.read_bytes()[:1000])
    os.utime(bad, (good.stat().st_mtime + 10, ) * 2)
    (tmp_path / 'last_checkpoint').write_text(str(bad))
    cfg = Config(dict(work_dir=str(tmp_path)))
    set_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from == str(good)

    # Nothing valid: resume starts from scratch (mmengine's own behaviour).
    good.write_bytes(b'')
    cfg = Config(dict(work_dir=str(tmp_path)))
    set_resume(cfg, 'auto')
    assert cfg.get('load_from') is None
