# Copyright (c) SMT-MM contributors. All rights reserved.
"""Two CPU (gloo) processes compute what one process computes, and one
crashing rank ends the whole job."""
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
from helpers import MINI_ARCH, REPO, write_tiny_det_config

pytestmark = pytest.mark.slow
HELPER = osp.join(REPO, 'tests', 'helpers', 'dist_grad_check.py')

# A small classifier. norm_eval: SMT has BatchNorm in its stem and in every
# SAM block; in train mode each rank would normalise with the statistics of
# its own half batch, which no single-process run reproduces. With running
# statistics (and no stochastic depth) each sample's loss is the same
# function in both set-ups, so mean-of-rank-means equals the global mean.
CLS_CONFIG = f'''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['smt_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=5,
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='SMT', arch={dict(MINI_ARCH, depths=[1, 1, 2, 1])!r},
                  out_indices=(3, ), norm_eval=True, drop_path_rate=0.),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=5, in_channels=128,
              loss=dict(type='CrossEntropyLoss')))
'''


def torchrun(nproc, args, port, timeout=180):
    cmd = [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={nproc}', f'--master_port={port}'
    ] + args
    return subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def torchrun_retrying_a_hang(nproc, args, port):
    """One CI run of the 2-process check hung past 180 s in gloo after the
    backward pass (it takes about 8 s; not reproduced in 6 reruns): a hang
    gets one more try on another port, a wrong result never does."""
    try:
        return torchrun(nproc, args, port, timeout=120)
    except subprocess.TimeoutExpired:
        return torchrun(nproc, args, port + 100, timeout=120)


def test_two_processes_match_one(tmp_path):
    config = tmp_path / 'cls.py'
    config.write_text(CLS_CONFIG)
    results = {}
    for nproc, port in ((1, 29641), (2, 29642)):
        out = tmp_path / f'np{nproc}.pth'
        proc = torchrun_retrying_a_hang(
            nproc, [HELPER, str(config), str(out), REPO], port)
        assert proc.returncode == 0, proc.stderr[-4000:]
        # every gradient fits its DDP bucket view without a copy
        assert 'Grad strides do not match' not in proc.stderr
        results[nproc] = torch.load(out)
    one, two = results[1], results[2]
    # Equal up to float summation order (per-rank sums, then all-reduce).
    torch.testing.assert_close(two['loss'], one['loss'], rtol=1e-6, atol=1e-7)
    assert one['grads'].keys() == two['grads'].keys()
    assert len(one['grads']) > 50
    for name, grad in one['grads'].items():
        torch.testing.assert_close(
            two['grads'][name], grad, rtol=1e-4, atol=1e-7, msg=name)


CRASH_HOOK = '''
import os
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CrashOnRank(Hook):
    """Test only: raise on one rank at one iteration."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if (runner.rank == int(os.environ['CRASH_RANK'])
                and runner.iter + 1 == int(os.environ['CRASH_ITER'])):
            raise RuntimeError(f'injected crash on rank {runner.rank}')
'''


def test_one_crashing_rank_ends_the_job(tmp_path):
    (tmp_path / 'crash_hook.py').write_text(CRASH_HOOK)
    config = write_tiny_det_config(
        tmp_path / 'data',
        num_train=8,
        batch_size=1,
        max_epochs=2,
        extra="custom_imports = dict(imports=['smt_mm', 'crash_hook'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='CrashOnRank')]\n")
    env = dict(
        __import__('os').environ,
        PYTHONPATH=str(tmp_path),
        CRASH_RANK='1',
        CRASH_ITER='2',
        PORT='29643',
        PYTHON=sys.executable)
    start = time.monotonic()
    proc = subprocess.run([
        'bash', 'tools/dist_train.sh', config, '2', '--work-dir',
        str(tmp_path / 'work')
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=180)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert 'injected crash on rank 1' in proc.stdout + proc.stderr
    assert elapsed < 180
