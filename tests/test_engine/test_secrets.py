# Copyright (c) SMT-MM contributors. All rights reserved.
"""A signed URL in a config (a checkpoint on S3, say) is used to load, but
never written to the log, the dumped config or the visualizer's copy."""
import glob
import os.path as osp

from helpers import MINI_ARCH, REPO
from mmengine.config import Config

from smt_mm.engine import SMTRunner

SECRET = 'X-Amz-Signature=0123456789abcdef'
URL = f'https://user:password@bucket.example/smt.pth?{SECRET}'


def test_signed_urls_stay_out_of_logs_and_dumps(tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs/cls/smt_t_in1k.py'))
    cfg.model.backbone.arch = MINI_ARCH
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=URL)
    cfg.model.head.update(num_classes=10, in_channels=128)
    cfg.model.data_preprocessor = dict(num_classes=10)
    cfg.load_from = URL
    work_dir = tmp_path / 'work'
    runner = SMTRunner(
        model=cfg.model,
        work_dir=str(work_dir),
        default_scope='mmpretrain',
        load_from=cfg.load_from,
        cfg=cfg)
    runner.logger.info(runner.cfg.pretty_text)
    runner.dump_config()
    # what the run uses keeps the URL as given
    assert runner.model.backbone.init_cfg['checkpoint'] == URL
    assert runner._load_from == URL
    assert 'smt.pth?...' in runner.cfg.pretty_text
    written = [
        p for p in glob.glob(str(work_dir / '**'), recursive=True)
        if osp.isfile(p)
    ]
    assert any(p.endswith('.log') for p in written)
    assert any(p.endswith('config.py') for p in written)
    for path in written:
        with open(path, errors='replace') as f:
            text = f.read()
        assert SECRET not in text and 'password' not in text, path
