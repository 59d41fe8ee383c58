# Copyright (c) SMT-MM contributors. All rights reserved.
"""Fine-tuning support: layer-wise lr decay through mmpretrain's
``LearningRateDecayOptimWrapperConstructor`` and timm-style
``feature_info`` / ``num_features``."""
import pytest
import torch
from helpers import MINI_ARCH

from smt_mm.models import SMT

FT_ARCH = dict(MINI_ARCH, depths=[1, 2, 2, 1])
# sum(depths) + 2: the stem, six blocks, and the head's depth
NUM_LAYERS = 8
# Depth of each backbone part, written out by hand: the stem is 0, each
# block has its own depth in order, a later stage's patch embedding goes
# with its first block, a stage norm with its last block, and the last
# stage's norm with the head.
EXPECTED_DEPTHS = {
    'stages.0.patch_embed.': 0,
    'stages.0.blocks.0.': 1,
    'stages.0.norm.': 1,
    'stages.1.patch_embed.': 2,
    'stages.1.blocks.0.': 2,
    'stages.1.blocks.1.': 3,
    'stages.1.norm.': 3,
    'stages.2.patch_embed.': 4,
    'stages.2.blocks.0.': 4,
    'stages.2.blocks.1.': 5,
    'stages.2.norm.': 5,
    'stages.3.patch_embed.': 6,
    'stages.3.blocks.0.': 6,
    'stages.3.norm.': 7,
}


def expected_depth(param_name):
    if not param_name.startswith('backbone.'):
        return NUM_LAYERS - 1  # neck and head keep the full rate
    name = param_name[len('backbone.'):]
    matches = [d for p, d in EXPECTED_DEPTHS.items() if name.startswith(p)]
    assert len(matches) == 1, param_name
    return matches[0]


def build_classifier():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='SMT', arch=FT_ARCH, out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=128)))


def test_get_layer_depth_of_every_backbone_parameter():
    model = SMT(FT_ARCH)
    names = [n for n, _ in model.named_parameters()]
    for name in names:
        depth, num_layers = model.get_layer_depth(name)
        assert num_layers == NUM_LAYERS
        assert depth == expected_depth('backbone.' + name), name
    # with a prefix: names without it are outside the backbone
    assert model.get_layer_depth('backbone.stages.1.blocks.1.norm1.weight',
                                 'backbone.') == (3, NUM_LAYERS)
    assert model.get_layer_depth('head.fc.weight',
                                 'backbone.') == (NUM_LAYERS - 1, NUM_LAYERS)


def test_layer_decay_constructor_scales_lr_by_depth():
    from mmengine.optim import build_optim_wrapper
    model = build_classifier()
    base_lr, rate = 1e-3, 0.5
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.05),
            constructor='LearningRateDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=rate)))
    groups = wrapper.optimizer.param_groups
    assert len(groups) == len(list(model.parameters()))
    seen = set()
    for group in groups:
        name = group['param_name']
        depth = expected_depth(name)
        assert group['layer_id'] == depth, name
        assert group['lr'] == pytest.approx(base_lr *
                                            rate**(NUM_LAYERS - 1 - depth))
        seen.add(depth)
    # every depth is used; the stem learns slowest, the head at base_lr
    assert seen == set(range(NUM_LAYERS))
    by_name = {g['param_name']: g['lr'] for g in groups}
    stem = by_name['backbone.stages.0.patch_embed.projection.weight']
    assert stem == pytest.approx(base_lr * rate**7)
    assert by_name['head.fc.weight'] == pytest.approx(base_lr)


@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (3, 1), (-2, )])
def test_feature_info_matches_outputs(out_indices):
    model = SMT(FT_ARCH, out_indices=out_indices).eval()
    size = 96
    with torch.no_grad():
        outs = model(torch.rand(1, 3, size, size))
    assert len(model.feature_info) == len(outs)
    for info, out in zip(model.feature_info, outs):
        assert info['num_chs'] == out.shape[1]
        assert info['reduction'] == size // out.shape[-1]
        # the named module is the one that produces the map
        stage = model.get_submodule(info['module'])
        assert stage is model.stages[int(info['module'].split('.')[1])]
        assert stage.norm.normalized_shape == (info['num_chs'], )
    assert model.num_features == 128


def test_num_features_sizes_a_head():
    model = SMT(FT_ARCH, out_indices=3).eval()
    head = torch.nn.Linear(model.num_features, 5)
    with torch.no_grad():
        feats = model(torch.rand(2, 3, 64, 64))[-1].mean((2, 3))
    assert head(feats).shape == (2, 5)
