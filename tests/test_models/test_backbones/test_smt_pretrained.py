# Copyright (c) SMT-MM contributors. All rights reserved.
"""``SMT(pretrained=...)`` as mmseg means it: its segmentors copy the
config's ``model.pretrained`` into the backbone, which then loads that
checkpoint as ``init_cfg=dict(type='Pretrained', checkpoint=...)`` would
(safely, strictly). Through the registry, the config check and
``tools/train.py``."""
import os.path as osp
import sys

import pytest
import torch
from helpers import MINI_ARCH, REPO, run_tool, train_log
from mmengine.config import Config
from mmengine.registry import DefaultScope

from smt_mm.errors import SMTConfigError, SMTConfigTypeError
from smt_mm.models import SMT

SYNTH_SEG = osp.join(REPO, 'configs/seg/smt_t_upernet_synth.py')


def fixture_file(fixtures_dir):
    return osp.join(fixtures_dir, 'smt_tiny_official.pth')


def expected_cases(fixtures_dir):
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = {k: v for k, v in expected['arch'].items() if k != 'num_classes'}
    assert arch == MINI_ARCH  # the tests' architecture is the fixture's
    return expected['cases']


def assert_official_outputs(backbone, fixtures_dir):
    backbone.eval()
    for case in expected_cases(fixtures_dir):
        with torch.no_grad():
            outs = backbone(case['input'])
        for out, ref in zip(outs, case['stages']):
            assert (out - ref).abs().max().item() <= 1e-5


def seg_config(**model):
    """The synthetic UPerNet config on the fixture's architecture."""
    cfg = Config.fromfile(SYNTH_SEG)
    cfg.model.backbone.arch = dict(MINI_ARCH)
    cfg.model.decode_head.in_channels = MINI_ARCH['embed_dims']
    cfg.model.auxiliary_head.in_channels = MINI_ARCH['embed_dims'][2]
    cfg.model.update(model)
    return cfg


def build_segmentor(cfg):
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


def test_pretrained_is_a_pretrained_init_cfg(fixtures_dir):
    path = fixture_file(fixtures_dir)
    model = SMT(MINI_ARCH, pretrained=path)
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    model.init_weights()
    assert_official_outputs(model, fixtures_dir)
    assert SMT(MINI_ARCH, pretrained=None).init_cfg is None


def test_segmentor_model_pretrained_loads_into_smt(fixtures_dir):
    cfg = seg_config(pretrained=fixture_file(fixtures_dir))
    segmentor = build_segmentor(cfg)
    assert segmentor.backbone.pretrained == fixture_file(fixtures_dir)
    segmentor.init_weights()
    assert_official_outputs(segmentor.backbone, fixtures_dir)


def test_pretrained_and_init_cfg_together_is_one_line(fixtures_dir):
    cfg = seg_config(pretrained=fixture_file(fixtures_dir))
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint='smt_tiny.pth')
    with pytest.raises(SMTConfigError) as err:
        build_segmentor(cfg)
    message = str(err.value)
    assert '\n' not in message
    assert 'and init_cfg=' in message and 'are both set' in message
    assert 'set model.pretrained=None' in message


@pytest.mark.parametrize('name', [
    'open-mmlab://resnet50_v1c', 'torchvision://resnet50',
    'mmcls://mobilenet_v2'
])
def test_model_zoo_names_are_refused_with_what_to_write(name):
    # mmseg's base configs set e.g. pretrained='open-mmlab://resnet50_v1c'
    with pytest.raises(SMTConfigError) as err:
        build_segmentor(seg_config(pretrained=name))
    message = str(err.value)
    assert f"SMT: pretrained={name!r} names weights of another " \
        "backbone in mmengine's model zoo" in message
    assert 'set model.pretrained=None, or to an SMT checkpoint' in message
    assert '\n' not in message


@pytest.mark.parametrize('value', [3, '', ['a.pth']])
def test_pretrained_of_the_wrong_type_is_one_line(value):
    with pytest.raises(SMTConfigTypeError, match='SMT: pretrained must be'):
        SMT(MINI_ARCH, pretrained=value)


def test_check_args_and_the_config_check_accept_pretrained():
    from smt_mm.launch.config import load_config
    SMT.check_args(pretrained='smt_tiny.pth')
    SMT.check_args(pretrained=None, init_cfg=dict(type='Pretrained'))
    cfg = load_config(SYNTH_SEG, {'model.backbone.pretrained': 'smt_tiny.pth'})
    assert cfg.model.backbone.pretrained == 'smt_tiny.pth'
    # a config whose backbone has a Pretrained init_cfg
    ade = osp.join(REPO, 'configs/seg/smt_t_upernet_160k_ade20k.py')
    with pytest.raises(SMTConfigError) as err:
        load_config(ade, {'model.backbone.pretrained': 'smt_tiny.pth'})
    assert str(err.value).startswith('model.backbone: SMT: ')


@pytest.mark.slow
def test_model_pretrained_through_tools_train(tmp_path, fixtures_dir):
    """One iteration of the synthetic UPerNet with ``model.pretrained`` the
    official-format fixture and the whole backbone frozen: the saved
    backbone is the fixture's, exactly."""
    from smt_mm.checkpoint import read_checkpoint
    from smt_mm.datasets.synthetic_ade import make_synthetic_ade
    from smt_mm.models.utils import extract_backbone_state_dict
    data = tmp_path / 'ade'
    make_synthetic_ade(str(data), num_train=2, num_val=1, image_size=(64, 64))
    path = fixture_file(fixtures_dir)
    config = tmp_path / 'seg_pretrained.py'
    config.write_text(f'''
_base_ = [{SYNTH_SEG!r}]
data_root = {str(data)!r}
model = dict(
    pretrained={path!r},
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(arch=dict(_delete_=True, **{MINI_ARCH!r}), frozen_stages=4),
    decode_head=dict(in_channels={MINI_ARCH['embed_dims']!r}, channels=16),
    auxiliary_head=dict(in_channels={MINI_ARCH['embed_dims'][2]},
                        channels=16))
loader = dict(num_workers=0, persistent_workers=False,
              dataset=dict(data_root=data_root))
train_dataloader = dict(batch_size=2, **loader)
val_dataloader = dict(batch_size=1, **loader)
test_dataloader = val_dataloader
train_cfg = dict(max_iters=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
''')
    work = tmp_path / 'work'
    run_tool([
        sys.executable, 'tools/train.py',
        str(config), '--work-dir',
        str(work)
    ])
    log = train_log(work)
    loaded = extract_backbone_state_dict(read_checkpoint(path))
    assert f'SMT: loaded {len(loaded)} tensors from' in log
    saved = extract_backbone_state_dict(
        read_checkpoint(str(work / 'iter_1.pth')), prefix='backbone')
    assert saved.keys() == loaded.keys()
    for key, value in loaded.items():
        assert torch.equal(saved[key], value), key
