# Mask R-CNN + SMT-S, 3x, multi-scale + crop (paper: 49.0 box / 43.4 mask AP).
_base_ = './smt_t_maskrcnn_3x.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_small.pth')))
