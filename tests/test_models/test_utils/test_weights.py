import os.path as osp

import pytest
import torch
from helpers import MINI_ARCH, to_official_key

from smt_mm.errors import CheckpointMismatchError
from smt_mm.models import SMT
from smt_mm.models.utils import convert_official_key


def official_arch(fixtures_dir):
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = dict(expected['arch'])
    arch.pop('num_classes')
    return arch, expected


def pretrained(arch, checkpoint, **kwargs):
    model = SMT(
        arch,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        **kwargs)
    model.init_weights()
    return model.eval()


def test_official_fixture_parity(fixtures_dir):
    arch, expected = official_arch(fixtures_dir)
    model = pretrained(arch, osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    for case in expected['cases']:
        with torch.no_grad():
            outs = model(case['input'])
        assert len(outs) == len(case['stages'])
        for out, ref in zip(outs, case['stages']):
            assert out.shape == ref.shape
            assert (out - ref).abs().max().item() <= 1e-5


LS_ARCH = dict(
    MINI_ARCH, depths=[1, 1, 2, 1], use_layerscale=True, head_conv=7)


def write_official(tmp_path, model, rename=None, extra=None):
    sd = {to_official_key(k): v for k, v in model.state_dict().items()}
    if rename:
        sd = {rename(k): v for k, v in sd.items()}
    sd['head.weight'] = torch.zeros(10, 128)
    sd['head.bias'] = torch.zeros(10)
    sd.update(extra or {})
    path = str(tmp_path / 'official.pth')
    torch.save({'model': sd, 'epoch': 3}, path)
    return path


def randomised(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


@pytest.mark.parametrize('msa_name', ['local_conv', 'dw_conv'])
def test_official_layer_scale_file_and_both_msa_spellings(tmp_path, msa_name):
    source = randomised(SMT(LS_ARCH))
    path = write_official(
        tmp_path,
        source,
        rename=lambda k: k.replace('attn.local_conv.', f'attn.{msa_name}.'))
    model = pretrained(LS_ARCH, path)
    x = torch.rand(1, 3, 64, 64)
    for a, b in zip(source(x), model(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_converter_key_names():
    assert convert_official_key('block3.1.attn.dw_conv.weight') == \
        'stages.2.blocks.1.attn.local_conv.weight'
    assert convert_official_key('block1.0.gamma_2') == \
        'stages.0.blocks.0.gamma2'
    assert convert_official_key('patch_embed1.conv.3.bias') == \
        'stages.0.patch_embed.projection.bias'
    assert convert_official_key('head.weight') is None


def test_unexpected_key_is_an_error_naming_it(tmp_path):
    source = SMT(LS_ARCH)
    path = write_official(
        tmp_path, source, extra={'block1.0.attn.extra.weight': torch.ones(1)})
    with pytest.raises(
            CheckpointMismatchError,
            match=r'1 unexpected: stages\.0\.blocks\.0\.attn\.'
            r'extra\.weight'):
        pretrained(LS_ARCH, path)


def test_missing_key_is_an_error_naming_it(tmp_path):
    source = SMT(LS_ARCH)
    path = write_official(tmp_path, source)
    sd = torch.load(path)
    del sd['model']['block2.0.attn.proj0.weight']
    torch.save(sd, path)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'1 missing: stages\.1\.blocks\.0\.attn\.proj0'):
        pretrained(LS_ARCH, path)


def test_checkpoint_of_another_arch_names_shapes(fixtures_dir):
    arch, _ = official_arch(fixtures_dir)
    wrong = dict(arch, embed_dims=[32, 64, 128, 256])
    with pytest.raises(CheckpointMismatchError) as err:
        pretrained(wrong, osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    assert 'shape mismatch' in str(err.value)
    assert '(file (16, 3, 3, 3), model (32, 3, 3, 3))' in str(err.value)


def test_layer_scale_file_into_model_without_it_is_an_error(tmp_path):
    path = write_official(tmp_path, SMT(LS_ARCH))
    with pytest.raises(CheckpointMismatchError, match='gamma1'):
        pretrained(dict(LS_ARCH, use_layerscale=False), path)


def test_toolkit_checkpoint_with_backbone_prefix(tmp_path):
    source = randomised(SMT(LS_ARCH))
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['neck.lateral.weight'] = torch.zeros(3)
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'meta': {'epoch': 1}, 'state_dict': state}, path)
    model = pretrained(LS_ARCH, path)
    x = torch.rand(1, 3, 64, 64)
    for a, b in zip(source(x), model(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
