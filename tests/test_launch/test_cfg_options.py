# Copyright (c) SMT-MM contributors. All rights reserved.
"""``--cfg-options``: a malformed item or a mistyped key is one line before
anything runs, in every tool (they all parse it with
``smt_mm.launch.cli.add_cfg_options`` and merge it in
``smt_mm.launch.config.load_config``); new keys mmengine may add still
are."""
import sys

import pytest
from helpers import QUICKSTART, run_tool, tool_error

from smt_mm.errors import LaunchError
from smt_mm.launch.config import load_config

TYPO = ('error: --cfg-options train_cfg.max_epoch=1: the config has no '
        'train_cfg.max_epoch; did you mean train_cfg.max_epochs?')


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_near_miss_key_names_the_existing_one(tool, tmp_path):
    args = [QUICKSTART, '--cfg-options', 'train_cfg.max_epoch=1']
    if tool == 'tools/test.py':
        checkpoint = tmp_path / 'model.pth'
        checkpoint.write_bytes(b'')  # never read: the options fail first
        args.insert(1, checkpoint)
    assert 'error: ' + tool_error(tool, args) == TYPO
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_missing_equals_shows_the_form(tool):
    args = [QUICKSTART, 'model.pth', '--cfg-options', 'train_cfg.max_epochs']
    if tool == 'tools/train.py':
        args.remove('model.pth')
    message = tool_error(tool, args)
    assert message.startswith('--cfg-options train_cfg.max_epochs: expected '
                              'KEY=VALUE'), message
    assert 'train_cfg.max_epochs=12' in message


def test_command_line_is_one_line_and_exit_1(tmp_path):
    proc = run_tool([
        sys.executable, 'tools/train.py', QUICKSTART, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', 'train_cfg.max_epoch=1'
    ],
                    check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == TYPO, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'work').exists()
    proc = run_tool([
        sys.executable, 'tools/misc/check_dataset.py', QUICKSTART,
        '--cfg-options', 'train_cfg.max_epochs'
    ],
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        'error: --cfg-options train_cfg.max_epochs: expected KEY=VALUE '
        '(a dotted config key, e.g. train_cfg.max_epochs=12 or '
        'model.backbone.drop_path_rate=0.2)'
    ]


@pytest.mark.parametrize(
    'key, nearest',
    [('trian_cfg.max_epochs', 'train_cfg'),
     ('model.backbon.with_cp', 'model.backbone'),
     ('model.backbone.drop_path_rat', 'model.backbone.drop_path_rate'),
     ('randomnes.seed', 'randomness')])
def test_near_misses_at_any_depth(key, nearest):
    with pytest.raises(LaunchError, match=f'did you mean {nearest}\\?$'):
        load_config(QUICKSTART, {key: 1}, check=False)


def test_unknown_top_level_key_refused():
    with pytest.raises(
            LaunchError,
            match='no top-level key foo, nor is it '
            'a Runner argument'):
        load_config(QUICKSTART, {'foo.bar': 1}, check=False)


@pytest.mark.parametrize(
    'key, value',
    [
        ('model.backbone.with_cp', True),  # new leaf, no close sibling
        ('model.neck.plugin_cfg.kind', 'x'),  # a new branch
        ('randomness.seed', 0),  # a Runner argument the config lacks
        ('load_strict', False),  # read by SMTRunner
        ('train_dataloader.dataset.pipeline.0.to_float32', True),  # list
        ('train_cfg.max_epochs', 3),
    ])
def test_new_keys_mmengine_adds_still_pass(key, value):
    cfg = load_config(QUICKSTART, {key: value}, check=False)
    node = cfg
    for part in key.split('.'):
        node = node[int(part)] if part.isdigit() else node[part]
    assert node == value
