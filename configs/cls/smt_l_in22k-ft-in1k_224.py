# SMT-L fine-tuned from ImageNet-22K to ImageNet-1K at 224x224: 30 epochs,
# 5 warm-up, drop_path 0.1, lr 1e-5 per 512 images (2e-5 at the total batch
# of 1024). The backbone starts from the official 22K file; the 1K head starts
# fresh, or from the 22K head rows of the 1K classes when a checkpoint made by
# `tools/convert_official.py smt_large_22k.pth OUT --head-rows map22kto1k.txt`
# is given as `load_from`.
_base_ = ['./smt_l_in1k.py']

model = dict(
    backbone=dict(
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_large_22k.pth')))

max_epochs = 30
warmup_epochs = 5
lr = 1e-5 * 1024 / 512
optim_wrapper = dict(optimizer=dict(lr=lr))
# The spec gives no warm-up start or cosine floor for fine-tuning: the same
# ratios to the peak lr as the 1K recipe are kept (also for the 384 config).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-3, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
