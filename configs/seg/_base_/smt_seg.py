# What every SMT-MM segmentation config shares: mmseg's UPerNet (SyncBN
# heads, auxiliary FCN head on stage 3 with loss weight 0.4), ADE20K 512x512
# data, runtime and 160k schedule, with the official SMT recipe: AdamW 6e-5,
# weight decay 0.01 (none on norm layers), 1500-iteration linear warmup then
# poly (power 1) decay, 8 GPUs x 2 images.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['smt_mm'], allow_failed_imports=False)
# checkpoints read safely, loaded strictly, written atomically
runner_type = 'SMTRunner'

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='SMT',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/AFeng-x/SMT/releases/download/'
            'v1.0.0/smt_tiny.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
         by_epoch=False),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Logged scalars go to WORK_DIR/<time>/vis_data/scalars.json (plot them with
# tools/analysis/plot_logs.py); tools/train.py adds a TensorBoard backend
# when tensorboard is installed.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(vis_backends=vis_backends)
