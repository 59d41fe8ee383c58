# Copyright (c) SMT-MM contributors. All rights reserved.
"""Optimizer settings written for other backbones, on SMT: a ``'norm'``
custom key covers SMT's BatchNorm layers, and a layer-decay constructor
that cannot set the model's layer ids is one line from ``tools/train.py``
(mmdet's ConvNeXt constructor on SMT runs as SMT-MM's)."""
import pytest
import torch.nn as nn
from helpers import decay_and_lr as settings_of
from helpers import tool_error
from mmengine.config import Config

from smt_mm.checks.optim import cover_smt_norm_layers
from smt_mm.launch.config import load_config
from smt_mm.models import SMT

BN_LINE = ("SMT: custom key 'norm' also covers SMT's BatchNorm layers "
           '(18 parameters)')
MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
CONVNEXT = ('mmdet::convnext/'
            'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py')


class Detector(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = SMT('tiny')
        self.neck = nn.Conv2d(4, 4, 1)


def smt_config(custom_keys):
    return Config(
        dict(
            model=dict(backbone=dict(type='SMT', arch='tiny')),
            optim_wrapper=dict(
                optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                paramwise_cfg=dict(custom_keys=custom_keys))))


def decay_and_lr(cfg):
    """{parameter name: (weight decay, lr)} of the built optimizer."""
    return settings_of(Detector(), cfg.optim_wrapper)


def batch_norm_params():
    return [
        f'{name}.{p}' for name, m in Detector().named_modules()
        if isinstance(m, nn.BatchNorm2d) for p in ('weight', 'bias')
    ]


def test_norm_key_covers_the_batch_norms():
    bn = batch_norm_params()
    assert len(bn) == 18
    cfg = smt_config({'norm': dict(decay_mult=0.)})
    before = decay_and_lr(cfg)
    assert all(before[n] == (0.05, 1e-4) for n in bn)  # silently decayed
    assert cover_smt_norm_layers(cfg) == BN_LINE
    after = decay_and_lr(cfg)
    for name in bn:
        assert after[name] == (0.0, 1e-4), name
    assert after['backbone.stages.0.blocks.0.norm1.weight'] == (0.0, 1e-4)
    assert after['backbone.stages.0.blocks.0.attn.v.weight'] == (0.05, 1e-4)
    assert cover_smt_norm_layers(cfg) is None  # applied once


def test_bn_layers_follow_the_key_that_wins_for_a_norm():
    """The BatchNorms get what a layer named 'norm' would get: with a
    longer matching key ('backbone', mmengine's longest-key rule) winning
    over 'norm', LayerNorms and BatchNorms both keep that key's settings."""
    cfg = smt_config({
        'norm': dict(decay_mult=0.),
        'backbone': dict(lr_mult=0.1)
    })
    assert cover_smt_norm_layers(cfg) is None
    got = decay_and_lr(cfg)
    assert got['backbone.stages.0.patch_embed.stem.bn.weight'] == \
        got['backbone.stages.0.blocks.0.norm1.weight'] == (0.05, 1e-5)
    # a norm_cfg of GroupNorm: named 'bn' too, covered likewise
    cfg = smt_config({'.norm': dict(decay_mult=0.)})
    cfg.model.backbone.norm_cfg = dict(type='GN', num_groups=1)
    assert cover_smt_norm_layers(cfg) == (
        "SMT: custom key '.norm' also covers SMT's GroupNorm layers "
        '(18 parameters)')


def write(tmp_path, text):
    path = tmp_path / 'user_config.py'
    path.write_text("custom_imports = dict(imports=['smt_mm'], "
                    'allow_failed_imports=False)\n' + text)
    return str(path)


SMT_DET = f'''
_base_ = [{MASK_RCNN!r}]
model = dict(backbone=dict(_delete_=True, type='SMT', arch='small'),
             neck=dict(in_channels=[64, 128, 256, 512]))
'''


def test_convnext_recipe_on_smt_runs_on_smt_constructor(tmp_path):
    path = write(
        tmp_path, f'''
_base_ = [{CONVNEXT!r}]
model = dict(backbone=dict(_delete_=True, type='SMT', arch='small'),
             neck=dict(in_channels=[64, 128, 256, 512]))
''')
    cfg = load_config(path)
    assert cfg.optim_wrapper.constructor == \
        'SMTLayerDecayOptimizerConstructor'
    assert cfg.optim_wrapper.paramwise_cfg == dict(
        decay_rate=0.95, decay_type='layer_wise', num_layers=6)


@pytest.mark.parametrize(
    'text, expected',
    [
        # mmdet's ConvNeXt constructor on ResNet
        (f'''_base_ = [{MASK_RCNN!r}]
optim_wrapper = dict(constructor='LearningRateDecayOptimizerConstructor',
                     paramwise_cfg=dict(decay_rate=0.7, num_layers=6))''',
         "optim_wrapper.constructor='LearningRateDecayOptimizerConstructor' "
         "(mmdet's) sets layer ids for ConvNeXt backbones only, not for "
         'model.backbone ResNet'),
        # SMT-MM's constructor on a backbone without get_layer_depth
        (f'''_base_ = [{MASK_RCNN!r}]
optim_wrapper = dict(constructor='SMTLayerDecayOptimizerConstructor',
                     paramwise_cfg=dict(decay_rate=0.7))''',
         'the backbone ResNet has no get_layer_depth'),
        # mmpretrain's constructor on a detector
        (SMT_DET + '''optim_wrapper = dict(
    constructor='mmpretrain.LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))''',
         'asks the model for get_layer_depth, which MaskRCNN has not'),
        # a decay_rate out of range
        (SMT_DET + '''optim_wrapper = dict(
    constructor='SMTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=7))''', 'decay_rate, a number in (0, 1]'),
    ],
    ids=['convnext-on-resnet', 'smt-on-resnet', 'mmpretrain-on-det', 'rate'])
def test_unusable_layer_decay_is_one_line_from_train_py(
        tmp_path, text, expected):
    message = tool_error('tools/train.py', [write(tmp_path, text)])
    assert expected in message, message
