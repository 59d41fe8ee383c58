# Sparse R-CNN + SMT-S, 300 proposals, 3x, multi-scale + crop (paper: 50.2
# box AP). mmdet's own config already carries the official recipe (AdamW
# 2.5e-5, weight decay 1e-4, grad clip 1, the same augmentation), so this one
# inherits it instead of our detection _base_ and only swaps the backbone.
_base_ = 'mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_300-proposals_crop-ms-480-800-3x_coco.py'  # noqa: E501
custom_imports = dict(imports=['smt_mm'], allow_failed_imports=False)
# checkpoints read safely, loaded strictly, written atomically
runner_type = 'SMTRunner'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SMT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_small.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
auto_scale_lr = dict(base_batch_size=16)
