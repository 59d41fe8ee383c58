# SMT-L pre-training on ImageNet-22K (21,841 classes, the official head),
# 90 epochs, 5 warm-up, drop_path 0.1, lr 1.25e-4 per 512 images -> 1e-3 at
# the official total batch of 4096 (e.g. 32 GPUs x 128; on fewer GPUs use
# tools/train.py --auto-scale-lr). ImageNet-22K has no official val split:
# validation is off; tools/test.py reads a held-out list in meta/val.txt.
_base_ = ['./smt_l_in1k.py']

num_classes = 21841
data_root = 'data/imagenet21k'
model = dict(
    backbone=dict(drop_path_rate=0.1),
    head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)

train_dataloader = dict(
    dataset=dict(type='ImageNet21k', data_root=data_root, split='train'))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = dict(
    batch_size=128,
    dataset=dict(type='ImageNet21k', data_root=data_root, split='',
                 ann_file='meta/val.txt', data_prefix=''))

max_epochs = 90
warmup_epochs = 5
lr = 1.25e-4 * 4096 / 512
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-3, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs + 1)
auto_scale_lr = dict(base_batch_size=4096)
