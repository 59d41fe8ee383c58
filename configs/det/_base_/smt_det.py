# What every SMT-MM detection config shares: mmdet's runtime and 1x
# schedule, the official optimizer (AdamW, no weight decay on norm layers),
# the import that registers the SMT backbone, and the pieces of the official
# 3x recipe (used as {{_base_.ms_crop_augment}} / {{_base_.schedule_3x}}).
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['smt_mm'], allow_failed_imports=False)
# checkpoints read safely, loaded strictly, written atomically
runner_type = 'SMTRunner'

optim_wrapper = dict(
    _delete_=True,  # no SGD momentum leaking into AdamW
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # 'norm' matches exactly the LayerNorm weights of the official recipe
    # (norm1/norm2 of blocks, stage and patch-embedding norms).
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))

# 8 GPUs x 2 images; --auto-scale-lr rescales for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# 3x multi-scale + crop augmentation: either short side 480-800 (step 32,
# long side <= 1333), or short side 400/500/600 -> random crop 384-600 ->
# short side 480-800. Goes after RandomFlip in the train pipeline.
ms_scales = [(1333, short) for short in range(480, 801, 32)]
ms_crop_augment = dict(
    type='RandomChoice',
    transforms=[
        [dict(type='RandomChoiceResize', scales=ms_scales, keep_ratio=True)],
        [
            dict(type='RandomChoiceResize',
                 scales=[(1333, 400), (1333, 500), (1333, 600)],
                 keep_ratio=True),
            dict(type='RandomCrop', crop_type='absolute_range',
                 crop_size=(384, 600), allow_negative_crop=True),
            dict(type='RandomChoiceResize', scales=ms_scales,
                 keep_ratio=True),
        ],
    ])
# 3x: 36 epochs, lr x0.1 at epochs 27 and 33, mmdet's 500-iteration warmup.
schedule_3x = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True,
         milestones=[27, 33], gamma=0.1),
]

# Logged scalars go to WORK_DIR/<time>/vis_data/scalars.json (plot them with
# tools/analysis/plot_logs.py); tools/train.py adds a TensorBoard backend
# when tensorboard is installed.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(vis_backends=vis_backends)
