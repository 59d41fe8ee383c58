# smt_b_maskrcnn_3x with layer-wise lr decay: SMT-B's 42 layer ids (stem 0,
# one per block, neck and heads 41 = full lr) from SMT.get_layer_depth,
# lr x 0.95 per id down to x 0.12 at the stem. An untuned example (the
# paper trains without layer decay); the base's 'norm' key still applies.
_base_ = './smt_b_maskrcnn_3x.py'
optim_wrapper = dict(
    constructor='SMTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise'))
