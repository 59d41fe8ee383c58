# Mask R-CNN + SMT-T, 1x (12 epochs, lr steps at 8 and 11), single scale.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    './_base_/smt_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='SMT',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        # The official recipe sets 0.2 (S) and 0.3 (B); T keeps its ImageNet
        # rate 0.1: the smallest model needs the least regularisation.
        drop_path_rate=0.1,
        # Official ImageNet release file (or a cls checkpoint of ours), path
        # relative to where you launch; override with --cfg-options
        # model.backbone.init_cfg.checkpoint=PATH
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_tiny.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
