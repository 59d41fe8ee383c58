# UPerNet + SMT-B, ADE20K 512x512, 160k (paper: 49.6 mIoU ss / 50.6 ms).
_base_ = './_base_/smt_seg.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_base.pth')))
