# Mask R-CNN + SMT-T, 3x: 36 epochs (lr steps 27/33), official multi-scale +
# crop augmentation.
_base_ = './smt_t_maskrcnn_1x.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    {{_base_.ms_crop_augment}},
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=36)
param_scheduler = {{_base_.schedule_3x}}
