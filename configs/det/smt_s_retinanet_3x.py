# RetinaNet + SMT-S, 3x, multi-scale + crop (paper: 47.3 box AP), AdamW 1e-4.
# Stages 2-4 (strides 8/16/32) feed the FPN; P6/P7 come from its input.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './_base_/smt_det.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='SMT',
        arch='small',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_small.pth')),
    neck=dict(in_channels=[128, 256, 512], start_level=0,
              add_extra_convs='on_input'))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    {{_base_.ms_crop_augment}},
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=36)
param_scheduler = {{_base_.schedule_3x}}
optim_wrapper = dict(optimizer=dict(lr=1e-4))
