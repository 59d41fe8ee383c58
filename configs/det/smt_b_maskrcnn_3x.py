# Mask R-CNN + SMT-B, 3x, multi-scale + crop (paper: 49.8 box / 44.0 mask AP).
_base_ = './smt_t_maskrcnn_3x.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_base.pth')))
