"""End-to-end runs of the shared launchers on a tiny detection setup."""
import os.path as osp
import pickle
import re
import sys

import pytest
from helpers import REPO, run_tool, write_tiny_det_config

from smt_mm.checkpoint import read_checkpoint
from smt_mm.datasets.synthetic_coco import make_synthetic_coco

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def tiny_det_config(tmp_path_factory):
    """A 2-iteration-per-epoch Mask R-CNN on 8 synthetic 64x64 images,
    validated after epoch 2."""
    return write_tiny_det_config(
        tmp_path_factory.mktemp('tiny_coco'),
        num_train=8,
        batch_size=4,
        extra='train_cfg = dict(max_epochs=2, val_interval=2)')


def train(config, work_dir, *extra):
    return run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), *extra
    ])


def meta_of(path):
    return read_checkpoint(str(path))['meta']


def test_train_resume_and_test(tiny_det_config, tmp_path):
    work_dir = tmp_path / 'work'
    train(tiny_det_config, work_dir)
    assert meta_of(work_dir / 'epoch_2.pth')['iter'] == 4

    # Resume the finished run for one more epoch from its last checkpoint.
    proc = train(tiny_det_config, work_dir, '--resume', '--cfg-options',
                 'train_cfg.max_epochs=3')
    assert 'resumed epoch: 2, iter: 4' in proc.stdout + proc.stderr
    meta = meta_of(work_dir / 'epoch_3.pth')
    assert (meta['epoch'], meta['iter']) == (3, 6)

    # A path given to --resume restarts from that checkpoint.
    proc = train(tiny_det_config, tmp_path / 'other', '--resume',
                 str(work_dir / 'epoch_1.pth'))
    assert 'resumed epoch: 1, iter: 2' in proc.stdout + proc.stderr

    out = tmp_path / 'preds.pkl'
    proc = run_tool([
        sys.executable, 'tools/test.py', tiny_det_config,
        str(work_dir / 'epoch_3.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(out), '--show-dir', 'vis'
    ])
    assert re.search(r'coco/bbox_mAP: \d', proc.stdout + proc.stderr)
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 2  # one entry per val image
    drawn = list((tmp_path / 'test').rglob('vis/*.png'))
    assert len(drawn) == 2


def test_dist_train_two_cpu_processes(tiny_det_config, tmp_path):
    work_dir = tmp_path / 'dist'
    proc = run_tool([
        'bash', 'tools/dist_train.sh', tiny_det_config, '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_dataloader.batch_size=2'
    ],
                    env=dict(PORT='29631', PYTHON=sys.executable))
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    # Global batch 2 x 2 = 4: 2 iterations per epoch as with 1 x 4 (a single
    # process with batch 2 would need 4).
    assert meta_of(work_dir / 'epoch_2.pth')['iter'] == 4


def test_launcher_errors_are_one_line(tmp_path):
    proc = run_tool(
        [sys.executable, 'tools/train.py', 'configs/det/smt_t_maskrcnn_1y.py'],
        check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'error: config file not found: configs/det/smt_t_maskrcnn_1y.py')
    assert 'smt_t_maskrcnn_1x.py' in proc.stderr


def test_smt_b_maskrcnn_3x_real_pipeline_trains(tmp_path):
    """The config users type, with its real multi-scale + crop pipeline
    (images up to 1333x800), on a synthetic image for one iteration (no
    ImageNet file needed; later steps are the tiny configs' tests). SMT-B's
    widths with one block per stage (the full preset's size and parity are
    the backbone tests'), one image per step and activation checkpointing
    keep the step within a 2-core CI machine."""
    from smt_mm.models import SMT
    arch = dict(SMT.arch_zoo['base'], depths=[1, 1, 1, 1])
    root = tmp_path / 'coco'
    make_synthetic_coco(
        str(root), num_train=1, num_val=1, seed=5, image_size=(96, 128))
    config = tmp_path / 'b3x.py'
    config.write_text(f'''
_base_ = [{osp.join(REPO, 'configs/det/smt_b_maskrcnn_3x.py')!r}]
data_root = {str(root) + '/'!r}
metainfo = dict(classes=('square', 'disc', 'triangle'))
model = dict(backbone=dict(init_cfg=None, with_cp=True,
                           arch=dict(_delete_=True, **{arch!r})))
train_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/')))
train_cfg = dict(max_epochs=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1))
val_dataloader = None
val_cfg = None
val_evaluator = None
''')
    proc = train(str(config), tmp_path / 'work')
    log = proc.stdout + proc.stderr
    assert 'Epoch(train) [1][1/1]' in log
    losses = [float(x) for x in re.findall(r' loss: ([\d.]+)', log)]
    assert len(losses) == 1 and 0 < losses[0] < 100
    assert meta_of(tmp_path / 'work' / 'epoch_1.pth')['iter'] == 1
