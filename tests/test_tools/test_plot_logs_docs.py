# Copyright (c) SMT-MM contributors. All rights reserved.
"""The plot_logs example of docs/tools.md, run as written on the work dir of
a tiny quickstart-config training run: its keys are ones that training
logs (a loss, the COCO box and mask mAP of the validation)."""
import os
import os.path as osp
import re
import shlex
import sys

import pytest
from helpers import REPO, run_tool, write_tiny_det_config

PAGE = osp.join(REPO, 'docs', 'tools.md')
# one training step, one validation (COCO bbox and segm metrics), no
# checkpoint; RoI samples and proposals capped as in the one-step tests
ONE_STEP_THEN_VALIDATE = '''
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=5, save_last=False))
model = dict(
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100),
                  rcnn=dict(max_per_img=20)))
'''


def documented_command():
    """The page's ``python tools/analysis/plot_logs.py ...`` line."""
    with open(PAGE, encoding='utf-8') as f:
        found = re.findall(r'^python tools/analysis/plot_logs\.py .*$',
                           f.read(), re.M)
    assert len(found) == 1, found
    return shlex.split(found[0])


@pytest.mark.slow
def test_documented_plot_logs_command_runs_on_a_quickstart_log(tmp_path):
    command = documented_command()
    work_dir = command[2]
    assert work_dir == 'work_dirs/quickstart'
    config = write_tiny_det_config(
        tmp_path / 'data',
        num_train=1,
        batch_size=1,
        max_epochs=1,
        extra=ONE_STEP_THEN_VALIDATE)
    run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(tmp_path / work_dir)
    ])
    os.symlink(osp.join(REPO, 'tools'), tmp_path / 'tools')
    proc = run_tool([sys.executable, *command[1:]], cwd=tmp_path)
    keys = command[command.index('--keys') + 1:command.index('--out')]
    assert keys == ['loss', 'bbox_mAP', 'segm_mAP']
    assert 'loss, coco/bbox_mAP, coco/segm_mAP' in proc.stdout, proc.stdout
    out = tmp_path / command[command.index('--out') + 1]
    assert out.stat().st_size > 1000
