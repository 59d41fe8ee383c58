# Copyright (c) SMT-MM contributors. All rights reserved.
"""Bad arguments, data and checkpoints give one clear line from the tools,
not a traceback from inside mmengine."""
import os.path as osp
import sys

import pytest
import torch
from helpers import MINI_ARCH, run_tool, write_tiny_det_config

from smt_mm.launch.cli import run_cli
from smt_mm.models import SMT

TINY_ARCH = dict(MINI_ARCH, depths=[1, 1, 1, 1])


def test_run_cli_prints_one_line_for_smt_errors(capsys):

    def main():
        SMT(TINY_ARCH)(torch.rand(1, 3, 16, 40))

    with pytest.raises(SystemExit) as exit_info:
        run_cli(main)
    assert exit_info.value.code == ('error: SMT: input 16x40 (HxW) is '
                                    'smaller than the minimum 32x32; resize '
                                    'or pad the images to at least that size')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('errors')
    config = write_tiny_det_config(root / 'data', num_train=2)
    return root, config


def derived(root, name, body):
    """A config inheriting the tiny one with ``body`` added."""
    path = root / f'{name}.py'
    path.write_text(f'_base_ = [{str(root / "data" / "tiny_det.py")!r}]\n'
                    f'{body}\n')
    return str(path)


def one_line_error(args, tmp_path):
    proc = run_tool(
        [sys.executable] + args +
        ['--work-dir', str(tmp_path / 'work')],
        timeout=300,
        check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert 'Traceback' not in output, output[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ')
    return last


def official_checkpoint():
    from helpers import FIXTURES
    return osp.join(FIXTURES, 'smt_tiny_official.pth')


# (name, config body or cfg-options, expected fragments of the one line)
CASES = [
    ('arch_name', "model = dict(backbone=dict(arch='huge'))",
     ["unknown arch 'huge'", "'tiny'"]),
    ('arch_key', 'model = dict(backbone=dict(arch=dict(depth=[1, 1])))',
     ["unknown arch key(s) ['depth']", "'depths'"]),
    ('out_indices', 'model = dict(backbone=dict(out_indices=(0, 4)))',
     ['out_indices entry 4 is out of range', '-4..3']),
    ('frozen_stages', 'model = dict(backbone=dict(frozen_stages=5))',
     ['frozen_stages=5 is out of range', '-1..4']),
    ('other_arch', "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
     "type='Pretrained', checkpoint={ckpt!r})))", [
         'smt_tiny_official.pth does not match SMT', 'unexpected: stages.1.'
         'blocks.1.norm1.weight'
     ]),
    ('missing_ckpt', "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
     "type='Pretrained', checkpoint='no/such/smt.pth')))",
     ['checkpoint file not found: no/such/smt.pth']),
    ('truncated_ckpt', 'load_from = {truncated!r}',
     ['cannot read checkpoint', 'truncated.pth', 'the file is truncated']),
    ('missing_folder',
     "train_dataloader = dict(dataset=dict(data_prefix=dict(img='nope/')))",
     ['train_dataloader.dataset: data folder not found:', 'nope/']),
    ('empty_folder',
     "train_dataloader = dict(dataset=dict(data_prefix=dict(img='empty/')))",
     ['train_dataloader.dataset: data folder is empty:', 'empty/']),
    ('config_merge', "model = dict(backbone=dict(init_cfg=dict("
     "type='Pretrained')))",
     ['cannot read config', 'init_cfg', '_delete_=True']),
    ('missing_ann',
     "train_dataloader = dict(dataset=dict(ann_file='annotations/x.json'))",
     ['annotation file not found:', 'annotations/x.json']),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    'name,body,expected', CASES, ids=[c[0] for c in CASES])
def test_train_tool_reports_one_line(tiny, tmp_path, name, body, expected):
    root, _ = tiny
    (root / 'data' / 'empty').mkdir(exist_ok=True)
    truncated = root / 'truncated.pth'
    if not truncated.exists():
        torch.save({'state_dict': {'w': torch.ones(10000)}}, truncated)
        truncated.write_bytes(truncated.read_bytes()[:5000])
    config = derived(
        root, name,
        body.format(ckpt=official_checkpoint(), truncated=str(truncated)))
    last = one_line_error(['tools/train.py', config], tmp_path)
    for fragment in expected:
        assert fragment in last, last


def test_config_typo_and_missing_test_checkpoint(tiny, tmp_path):
    _, config = tiny
    last = one_line_error(['tools/train.py', config[:-3] + '_x.py'], tmp_path)
    assert last.startswith('error: config file not found:')
    last = one_line_error(['tools/test.py', config, 'no/ckpt.pth'], tmp_path)
    assert last == 'error: checkpoint not found: no/ckpt.pth'
