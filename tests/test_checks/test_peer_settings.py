# Copyright (c) SMT-MM contributors. All rights reserved.
"""Settings written for other backbones, on SMT: Swin-style
``paramwise_cfg.custom_keys`` reach SMT's norm layers, and a pretrained SMT
fed inputs normalised another way is reported in one line."""
import sys

import pytest
import torch.nn as nn
from helpers import decay_and_lr as settings_of
from helpers import run_tool, train_log, write_tiny_det_config
from mmengine.config import Config

from smt_mm.checks.config import (IMAGENET_MEAN, IMAGENET_STD,
                                  adapt_swin_custom_keys,
                                  check_input_normalisation)
from smt_mm.launch.config import load_config
from smt_mm.models import SMT

SWIN_PANOPTIC = ('mmdet::mask2former/'
                 'mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py')


class Detector(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = SMT('tiny')
        self.head = nn.Linear(4, 4)


def decay_and_lr(cfg):
    """{parameter name: (weight decay, lr)} of the built optimizer."""
    return settings_of(Detector(), cfg.optim_wrapper)


def norm_names():
    model = Detector()
    return [
        f'{name}.{p}' for name, m in model.named_modules()
        if name.startswith('backbone') and isinstance(m, (nn.LayerNorm,
                                                          nn.BatchNorm2d))
        for p in ('weight', 'bias')
    ]


@pytest.fixture
def swin_user_config(tmp_path):
    path = tmp_path / 'm2f_swin_smt.py'
    path.write_text(f'''
_base_ = [{SWIN_PANOPTIC!r}]
custom_imports = dict(imports=['smt_mm'], allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='SMT', arch='tiny'),
             panoptic_head=dict(in_channels=[64, 128, 256, 512]))
''')
    return str(path)


def test_swin_custom_keys_reach_every_smt_norm(swin_user_config):
    # as written: the Swin keys miss 24 of SMT-T's norm parameters (stage-3
    # blocks 6-7, patch-embedding and stage norms), which get decay 0.05
    raw = decay_and_lr(load_config(swin_user_config, check=False))
    base_lr = 0.0001
    missed = [n for n in norm_names() if raw[n] != (0.0, base_lr * 0.1)]
    layer_norms = [n for n in missed if '.bn.' not in n]
    assert len(layer_norms) == 24, layer_norms
    # read by the tools: one line, and every norm gets the Swin multipliers
    cfg = load_config(swin_user_config)
    fixed = decay_and_lr(cfg)
    for name in norm_names():
        assert fixed[name] == (0.0, base_lr * 0.1), name
    # the rest of the backbone keeps the 'backbone' key (decay, lr x 0.1)
    assert fixed['backbone.stages.2.blocks.7.attn.q.weight'] == \
        (0.05, base_lr * 0.1)
    assert adapt_swin_custom_keys(cfg) is None  # applied once


def test_swin_keys_message_names_them(swin_user_config):
    cfg = load_config(swin_user_config, check=False)
    message = adapt_swin_custom_keys(cfg)
    assert message.startswith('model.backbone is SMT: Swin-style '
                              "paramwise_cfg.custom_keys ('backbone")
    assert "'backbone.patch_embed.norm'" in message and '\n' not in message


def normalisation_cfg(preprocessor, pretrained=True):
    backbone = dict(type='SMT', arch='tiny')
    if pretrained:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint='smt.pth')
    return Config(
        dict(model=dict(backbone=backbone, data_preprocessor=preprocessor)))


def test_normalisation_warning_names_the_expected_mean_and_std():
    imagenet = dict(
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), bgr_to_rgb=True)
    assert check_input_normalisation(normalisation_cfg(imagenet)) is None
    caffe = dict(
        mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], bgr_to_rgb=False)
    message = check_input_normalisation(normalisation_cfg(caffe))
    assert 'mean=[123.675, 116.28, 103.53]' in message
    assert 'std=[58.395, 57.12, 57.375]' in message
    assert 'std=[1, 1, 1], bgr_to_rgb=False' in message
    yolox = dict(type='DetDataPreprocessor', pad_size_divisor=32)
    assert 'no mean/std' in check_input_normalisation(normalisation_cfg(yolox))
    # BGR order with ImageNet numbers (RTMDet): the channel order differs
    rtmdet = dict(
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=False)
    assert check_input_normalisation(normalisation_cfg(rtmdet))
    # mmpretrain spells it to_rgb; no pretrained weights: nothing to say
    cls = dict(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), to_rgb=True)
    assert check_input_normalisation(normalisation_cfg(cls)) is None
    assert check_input_normalisation(
        normalisation_cfg(caffe, pretrained=False)) is None


@pytest.mark.slow
def test_tools_train_applies_and_reports_them(tmp_path):
    """Through tools/train.py: Swin keys on the tiny detector become SMT
    norm keys (mmengine logs decay 0 for a patch-embedding norm) and the
    caffe normalisation of a pretrained SMT is one warning line."""
    ckpt = str(tmp_path / 'ckpt')
    extra = f'''
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.patch_embed.norm': dict(lr_mult=0.1, decay_mult=0.0),
    'backbone.norm': dict(lr_mult=0.1, decay_mult=0.0)}}))
model['backbone']['init_cfg'] = dict(_delete_=True, type='Pretrained',
                                     checkpoint={ckpt!r})
model['data_preprocessor'] = dict(mean=[103.53, 116.28, 123.675],
                                  std=[1.0, 1.0, 1.0], bgr_to_rgb=False)
'''
    config = write_tiny_det_config(
        tmp_path / 'data', num_train=2, max_epochs=1, extra=extra)
    # a checkpoint of the tiny detector's backbone (backbone. keys)
    import torch
    from mmdet.registry import MODELS
    backbone_cfg = load_config(config, check=False).model.backbone
    backbone_cfg.pop('init_cfg')
    backbone = MODELS.build(backbone_cfg)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    torch.save({'state_dict': state}, ckpt)
    work = tmp_path / 'work'
    proc = run_tool(
        [sys.executable, 'tools/train.py', config, '--work-dir',
         str(work)])
    output = proc.stdout + proc.stderr
    assert output.count('Swin-style paramwise_cfg.custom_keys') == 1
    assert output.count('whose ImageNet weights expect mean=') == 1
    log = train_log(work)
    assert 'backbone.stages.0.patch_embed.norm.weight:weight_decay=0.0' in log
    assert 'backbone.stages.3.norm.bias:weight_decay=0.0' in log
