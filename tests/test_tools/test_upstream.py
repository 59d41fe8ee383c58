# Copyright (c) SMT-MM contributors. All rights reserved.
"""Upstream tools on our files: a checkpoint written by ``tools/train.py``
(one iteration) read by plain ``torch.load`` and by mmpretrain's
``init_model`` / ``inference_model`` / ``vis_cam``; a config that inherits
``smt_mm::`` run through mmpretrain's own tool."""
import os.path as osp
import sys

import pytest
import torch
from helpers import REPO, run_tool
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

from smt_mm.checkpoint import read_checkpoint
from smt_mm.datasets.digits import make_digits_dataset
from smt_mm.engine.plain_state import TAG, from_plain
from smt_mm.launch.upstream import export_config, inherits_package

UPSTREAM = [sys.executable, '-m', 'smt_mm.launch.upstream']
# a training run and several tool processes: minutes
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(user config inheriting smt_mm::cls/smt_t_digits.py, its checkpoint
    after one iteration of tools/train.py, an image)."""
    root = tmp_path_factory.mktemp('upstream')
    data = root / 'digits'
    make_digits_dataset(str(data), limit=4)
    config = root / 'my_digits.py'
    config.write_text(f'''
_base_ = ['smt_mm::cls/smt_t_digits.py']
data_root = {str(data) + '/'!r}
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = []
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
''')
    work = root / 'work'
    run_tool([
        sys.executable, 'tools/train.py',
        str(config), '--work-dir',
        str(work)
    ])
    image = osp.join(
        str(data), 'val',
        open(data / 'meta' / 'val.txt').read().split()[0])
    return str(config), str(work / 'epoch_1.pth'), image


def test_checkpoint_is_plain_and_resume_rebuilds_the_message_hub(trained):
    _, checkpoint, _ = trained
    # torch's default (weights_only=True), no allow-list of ours
    plain = torch.load(checkpoint)
    loss = plain['message_hub']['log_scalars']['train/loss']
    assert loss[TAG] == 'HistoryBuffer'
    # what SMTRunner.load_checkpoint (and so --resume) hands to mmengine
    rebuilt = from_plain(read_checkpoint(checkpoint))
    buffer = rebuilt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.current() == pytest.approx(
        float(loss['log_history']['data'][-1]))
    assert buffer._log_history.dtype == loss['log_history']['data'].numpy(
    ).dtype


def test_mmpretrain_init_model_and_inference_model(trained, tmp_path):
    from mmpretrain import inference_model
    from mmpretrain.apis import init_model
    config, checkpoint, image = trained
    flat = export_config(config, str(tmp_path / 'my_digits.py'))
    text = open(flat).read()
    assert 'smt_mm::' not in text and "'_scope_': 'smt_mm'" not in text
    model = init_model(flat, checkpoint, device='cpu')
    assert model._dataset_meta['classes'][:2] == ('0', '1')
    # our model hub name, through mmpretrain's task -> inferencer lookup
    result = inference_model('smt_t_digits', image, pretrained=checkpoint)
    assert result['pred_class'] in model._dataset_meta['classes']


def test_vis_cam_through_its_command_line(trained, tmp_path):
    config, checkpoint, image = trained
    assert inherits_package(config)
    out = tmp_path / 'cam.png'
    args = [
        image, config, checkpoint, '--target-layers', 'backbone.stages.3',
        '--save-path',
        str(out)
    ]
    # the upstream tool alone cannot resolve smt_mm:: in the config
    from smt_mm.launch.upstream import find_tool
    script = find_tool('mmpretrain', 'vis_cam')
    proc = run_tool([sys.executable, script] + args, check=False)
    assert proc.returncode != 0
    assert 'does not support to load smt_mm config' in proc.stderr
    run_tool(UPSTREAM + ['run', 'mmpretrain', 'vis_cam'] + args)
    assert out.stat().st_size > 0


def test_export_needs_no_smt_mm_import_to_read(trained, tmp_path):
    config, _, _ = trained
    flat = str(tmp_path / 'flat.py')
    run_tool(UPSTREAM + ['export', config, flat])
    code = ('from mmengine.config import Config; import sys; '
            f'cfg = Config.fromfile({flat!r}); '
            "print(cfg.model.backbone.type, 'smt_mm' in sys.modules)")
    out = run_tool([sys.executable, '-c', code], cwd=str(tmp_path)).stdout
    # custom_imports imports smt_mm while the file is read
    assert out.split()[-2:] == ['SMT', 'True']
    assert Config.fromfile(flat).runner_type == 'SMTRunner'
    proc = run_tool(UPSTREAM + ['run', 'mmpretrain', 'vis_camm'], check=False)
    assert proc.returncode == 1
    assert "has no tool 'vis_camm'" in proc.stderr
    assert 'vis_cam' in proc.stderr.splitlines()[-1]
    assert osp.isdir(REPO)
