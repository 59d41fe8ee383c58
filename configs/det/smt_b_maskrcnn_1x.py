# Mask R-CNN + SMT-B, 1x, single scale.
_base_ = './smt_t_maskrcnn_1x.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_base.pth')))
