# UPerNet + SMT-S, ADE20K 512x512, 160k (paper: 49.2 mIoU ss / 50.2 ms).
_base_ = './_base_/smt_seg.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_small.pth')))
