# Copyright (c) SMT-MM contributors. All rights reserved.
"""Layer-wise learning-rate decay on SMT detectors and segmentors:
``SMTLayerDecayOptimizerConstructor`` takes the ids from
``SMT.get_layer_depth``, the ConvNeXt-style configs of mmdet and mmseg run
on it, and one iteration trains through ``tools/train.py``."""
import os.path as osp
import sys

import pytest
import torch.nn as nn
from helpers import (MINI_ARCH, REPO, assert_finite_losses, run_tool,
                     train_log, train_tiny_det)
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from smt_mm.errors import SMTConfigError
from smt_mm.launch.config import load_config
from smt_mm.models import SMT

DET = osp.join(REPO, 'configs/det/smt_b_maskrcnn_3x_layer-decay.py')
SEG = osp.join(REPO, 'configs/seg/smt_b_upernet_160k_ade20k_layer-decay.py')
# MINI_ARCH: depths [1, 2, 3, 1] -> ids 0 (stem) .. 8 (neck, heads)
NUM_IDS = sum(MINI_ARCH['depths']) + 2


class Detector(nn.Module):
    """What the constructor sees of a detector: a backbone and a neck."""

    def __init__(self):
        super().__init__()
        self.backbone = SMT(dict(MINI_ARCH))
        self.neck = nn.Conv2d(128, 8, 1)


def groups_by_name(model, optim_wrapper_cfg):
    """{parameter name: its param group} of the built optimizer."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    return {
        name: group
        for group in wrapper.optimizer.param_groups
        for name in group['param_names']
    }


def test_layer_wise_ids_and_lrs_follow_get_layer_depth():
    cfg = load_config(DET)
    assert cfg.optim_wrapper.constructor == \
        'SMTLayerDecayOptimizerConstructor'
    model = Detector()
    groups = groups_by_name(model, cfg.optim_wrapper)
    base_lr, rate = 2e-4, 0.95
    assert set(groups) == {n for n, _ in model.named_parameters()}
    for name, group in groups.items():
        depth, num = model.backbone.get_layer_depth(name, 'backbone.')
        assert num == NUM_IDS and group['layer_id'] == depth, name
        assert group['lr'] == pytest.approx(base_lr * rate**(num - 1 - depth))
    stem = groups['backbone.stages.0.patch_embed.stem.conv.weight']
    assert stem['layer_id'] == 0
    assert stem['lr'] == min(g['lr'] for g in groups.values())
    assert groups['backbone.stages.3.blocks.0.attn.q.weight']['layer_id'] == \
        NUM_IDS - 2
    for top in ('backbone.stages.3.norm.weight', 'neck.weight'):
        assert groups[top]['layer_id'] == NUM_IDS - 1
        assert groups[top]['lr'] == pytest.approx(base_lr)
    # the base recipe's 'norm' key, BatchNorms included (config check)
    for name in ('backbone.stages.0.patch_embed.stem.bn.weight',
                 'backbone.stages.0.blocks.0.attn.bn.bias',
                 'backbone.stages.0.blocks.0.norm1.weight'):
        assert groups[name]['weight_decay'] == 0.0, name
    assert groups['backbone.stages.0.blocks.0.attn.v.weight'][
        'weight_decay'] == 0.05


def test_stage_wise_ids():
    cfg = load_config(SEG)
    model = Detector()
    groups = groups_by_name(model, cfg.optim_wrapper)
    expected = {
        'backbone.stages.0.patch_embed.stem.conv.weight': 0,
        'backbone.stages.0.blocks.0.attn.v.weight': 1,
        'backbone.stages.1.patch_embed.projection.weight': 2,
        'backbone.stages.2.blocks.2.ffn.fc1.weight': 3,
        'backbone.stages.2.norm.weight': 3,
        'backbone.stages.3.blocks.0.attn.q.weight': 4,
        'backbone.stages.3.norm.weight': 5,
        'neck.weight': 5,
    }
    for name, stage in expected.items():
        assert groups[name]['layer_id'] == stage, name
        assert groups[name]['lr'] == pytest.approx(6e-5 * 0.9**(5 - stage))


def test_without_decay_rules_biases_and_1d_params_get_none():
    """As mmdet's and mmseg's ConvNeXt constructor: no custom keys or
    decay multipliers -> no weight decay on biases and 1-D parameters;
    custom keys' lr_mult multiplies the decayed lr."""
    optimizer = dict(type='AdamW', lr=1e-3, weight_decay=0.05)
    groups = groups_by_name(
        Detector(),
        dict(
            optimizer=optimizer,
            constructor='SMTLayerDecayOptimizerConstructor',
            paramwise_cfg=dict(decay_rate=0.5)))
    assert groups['backbone.stages.0.blocks.0.attn.v.weight'][
        'weight_decay'] == 0.05
    for name in ('backbone.stages.0.blocks.0.attn.v.bias',
                 'backbone.stages.0.patch_embed.stem.bn.weight',
                 'backbone.stages.1.blocks.0.norm1.weight', 'neck.bias'):
        assert groups[name]['weight_decay'] == 0.0, name
    groups = groups_by_name(
        Detector(),
        dict(
            optimizer=optimizer,
            constructor='SMTLayerDecayOptimizerConstructor',
            paramwise_cfg=dict(
                decay_rate=0.5, custom_keys={'stages.1': dict(lr_mult=0.1)})))
    name = 'backbone.stages.1.blocks.0.attn.v.weight'
    depth = groups[name]['layer_id']
    assert groups[name]['lr'] == pytest.approx(1e-3 * 0.1 *
                                               0.5**(NUM_IDS - 1 - depth))
    assert groups[name]['weight_decay'] == 0.05  # custom keys decide
    # without weight decay (no decay rules apply) the lrs still decay
    groups = groups_by_name(
        Detector(),
        dict(
            optimizer=dict(type='SGD', lr=0.1),
            constructor='SMTLayerDecayOptimizerConstructor',
            paramwise_cfg=dict(decay_rate=0.5)))
    stem = groups['backbone.stages.0.patch_embed.stem.conv.weight']
    assert stem['lr'] == pytest.approx(0.1 * 0.5**(NUM_IDS - 1))


def test_refusals_are_one_line():

    class Plain(nn.Module):

        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

    def build(model, **paramwise):
        return build_optim_wrapper(
            model,
            dict(
                optimizer=dict(type='AdamW', lr=1e-3),
                constructor='SMTLayerDecayOptimizerConstructor',
                paramwise_cfg=paramwise))

    cases = [
        (Plain(nn.Linear(2, 2)), dict(decay_rate=0.9),
         'the backbone Linear has no get_layer_depth'),
        (Detector(), dict(decay_rate=1.5), 'decay_rate, a number in (0, 1]'),
        (Detector(), dict(), 'paramwise_cfg needs decay_rate'),
        (Detector(), dict(decay_rate=0.9, decay_type='layer_wise_vit'),
         "decay_type must be one of 'layer_wise', 'stage_wise'"),
        (nn.Linear(2, 2), dict(decay_rate=0.9), 'has no backbone'),
    ]
    for model, paramwise, expected in cases:
        with pytest.raises(SMTConfigError) as err:
            build(model, **paramwise)
        assert expected in str(err.value) and '\n' not in str(err.value)


@pytest.mark.slow
def test_convnext_style_config_trains_one_step_through_train_py(tmp_path):
    """mmdet's ConvNeXt recipe's optimizer settings (constructor name,
    decay_rate, decay_type, num_layers) on the tiny SMT detector: the
    tools run them on SMTLayerDecayOptimizerConstructor, one line each
    for the switch and the ignored num_layers."""
    extra = '''
optim_wrapper = dict(
    constructor='LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise',
                       num_layers=6))
'''
    output, log = train_tiny_det(tmp_path, extra=extra)
    assert output.count("runs as 'SMTLayerDecayOptimizerConstructor'") == 1
    # the recipe's 'norm' key reaches the BatchNorms (stem, 3 SAM blocks)
    assert output.count("SMT: custom key 'norm' also covers SMT's "
                        'BatchNorm layers (8 parameters)') == 1
    assert 'stages.0.patch_embed.stem.bn.weight:weight_decay=0.0' in log
    assert 'paramwise_cfg num_layers=6 ignored' in log
    assert 'layer_wise lr decay 0.7 over 6 ids of SMT' in log
    assert_finite_losses(log)


@pytest.mark.slow
def test_convnext_style_seg_config_trains_one_step_through_train_py(tmp_path):
    """mmseg's ConvNeXt UPerNet recipe's optimizer settings (stage-wise,
    num_layers=12) on the synthetic UPerNet + SMT config, with the
    narrow SMT: one iteration through ``tools/train.py`` at the decay the
    config asks for."""
    from smt_mm.datasets.synthetic_ade import make_synthetic_ade
    data = tmp_path / 'ade'
    make_synthetic_ade(str(data), num_train=2, num_val=1, image_size=(64, 64))
    arch = dict(MINI_ARCH, depths=[1, 1, 1, 1])
    config = tmp_path / 'tiny_seg.py'
    config.write_text(f'''
_base_ = [{osp.join(REPO, 'configs/seg/smt_t_upernet_synth.py')!r}]
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(arch=dict(_delete_=True, **{arch!r})),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=16),
    auxiliary_head=dict(in_channels=64, channels=16))
train_dataloader = dict(batch_size=2, num_workers=0,
                        persistent_workers=False,
                        dataset=dict(data_root={str(data)!r}))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root={str(data)!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=100))
optim_wrapper = dict(
    constructor='LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise',
                       num_layers=12))
''')
    work = tmp_path / 'work'
    proc = run_tool([
        sys.executable, 'tools/train.py',
        str(config), '--work-dir',
        str(work)
    ])
    output = proc.stdout + proc.stderr
    assert output.count("runs as 'SMTLayerDecayOptimizerConstructor'") == 1
    log = train_log(work)
    assert 'paramwise_cfg num_layers=12 ignored' in log
    # stem 0, stages 1-4, heads 5: six ids
    assert 'stage_wise lr decay 0.9 over 6 ids of SMT' in log
    assert_finite_losses(log)
