# What every SMT-MM detection config shares: mmdet's runtime and 1x
# schedule, the official optimizer (AdamW, no weight decay on norm layers)
# and the import that registers the SMT backbone.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['smt_mm'], allow_failed_imports=False)

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
