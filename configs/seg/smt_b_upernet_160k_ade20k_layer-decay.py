# smt_b_upernet_160k_ade20k with stage-wise lr decay (as mmseg's ConvNeXt
# UPerNet recipes): stem id 0, stage i id i + 1, decode heads id 5 = full
# lr, lr x 0.9 per id down to x 0.59 at the stem. An untuned example (the
# paper trains without layer decay); the base's 'norm' key still applies.
_base_ = './smt_b_upernet_160k_ade20k.py'
optim_wrapper = dict(
    constructor='SMTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise'))
