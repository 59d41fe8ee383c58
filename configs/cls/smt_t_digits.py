# Real-data check on CPU: SMT-T trained from scratch on scikit-learn's
# handwritten digits (tools/misc/make_digits_dataset.py: 1,438 train / 359
# held-out scans of 8x8, upsampled to 32x32, the smallest input SMT takes).
# The ImageNet recipe minus what hurts tiny images: no Mixup/CutMix,
# RandAugment, erasing or flips (a mirrored digit is another symbol).
_base_ = ['./_base_/smt_cls.py']

data_root = 'data/digits/'
num_classes = 10
classes = tuple(str(d) for d in range(num_classes))
image_size = 32

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    head=dict(num_classes=num_classes, in_channels=512),
    train_cfg=None)
# grey levels of the scans: mean about 78, std about 96 (of 255)
data_preprocessor = dict(
    num_classes=num_classes, mean=[78.0] * 3, std=[96.0] * 3, to_rgb=False)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size),
         interpolation='bicubic'),
    dict(type='RandomCrop', crop_size=image_size, padding=3, pad_val=0),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size),
         interpolation='bicubic'),
    dict(type='PackInputs'),
]


def _split(name, pipeline, shuffle):
    return dict(
        batch_size=64,
        num_workers=1,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        dataset=dict(
            _delete_=True,
            type='CustomDataset',
            data_root=data_root,
            ann_file=f'meta/{name}.txt',
            data_prefix=name,
            metainfo=dict(classes=classes),
            pipeline=pipeline))


train_dataloader = _split('train', train_pipeline, True)
val_dataloader = _split('val', test_pipeline, False)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 30
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
auto_scale_lr = dict(base_batch_size=64)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
