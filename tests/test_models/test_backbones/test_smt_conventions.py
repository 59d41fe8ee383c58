# Copyright (c) SMT-MM contributors. All rights reserved.
"""The backbone conventions of mmdet's and mmpretrain's Swin: ``norm_cfg``,
``act_cfg`` and the LayerNorm configs, ``frozen_stages`` as mmdet's Swin
counts (-1 nothing, 0 the stem, i the stem and stages 1..i; mmpretrain's
freezes one stage more), complete arch dicts, a versioned state dict, and
``get_layer_depth`` refusing names it does not know."""
import pytest
import torch
import torch.nn as nn
from helpers import MINI_ARCH
from helpers.reference_smt import ReferenceSMT

from smt_mm.errors import SMTConfigError, SMTConfigTypeError
from smt_mm.models import SMT
from smt_mm.models.backbones.smt import SAM, StemEmbed


def types_of(model, *names):
    """The module types at the given (glob-free) attribute paths."""
    return [type(model.get_submodule(n)) for n in names]


NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def randomise(model, seed=0):
    """The official initialisation, then random affine parameters and
    statistics in every norm layer (not the unit ones)."""
    torch.manual_seed(seed)
    model.init_weights()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, NORMS):
                continue
            for name, tensor in module.state_dict().items():
                if tensor.is_floating_point():
                    low = 0.5 if name in ('weight', 'running_var') else 0.
                    tensor.copy_(low +
                                 0.5 * torch.rand(tensor.shape, generator=gen))
    return model


# ---------------------------------------------------------------------------
# norm_cfg / act_cfg / LayerNorm configs
# ---------------------------------------------------------------------------
def test_default_layers_are_the_official_ones():
    model = SMT(MINI_ARCH)
    stem = model.stages[0].patch_embed
    sam = model.stages[0].blocks[0].attn
    block = model.stages[3].blocks[0]
    assert type(stem.stem.bn) is nn.BatchNorm2d
    assert type(sam.bn) is nn.BatchNorm2d
    assert type(sam.act) is nn.GELU and sam.act.approximate == 'none'
    assert type(block.ffn.act) is nn.GELU
    # blocks and stage outputs: eps 1e-6; patch embeddings: PyTorch's 1e-5
    assert block.norm1.eps == block.norm2.eps == 1e-6
    assert model.stages[1].norm.eps == 1e-6
    assert stem.norm.eps == model.stages[2].patch_embed.norm.eps == 1e-5


def test_explicit_default_cfgs_give_the_same_keys_and_outputs():
    torch.manual_seed(0)
    default = randomise(SMT(MINI_ARCH)).eval()
    explicit = SMT(
        MINI_ARCH,
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='GELU'),
        transformer_norm_cfg=dict(type='LN', eps=1e-6),
        patch_norm_cfg=dict(type='LN')).eval()
    explicit.load_state_dict(default.state_dict())
    x = torch.rand(1, 3, 64, 64)
    for a, b in zip(default(x), explicit(x)):
        assert torch.equal(a, b)


def test_syncbn_keeps_keys_and_matches_bn():
    bn = randomise(SMT(MINI_ARCH)).eval()
    sync = SMT(MINI_ARCH, norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert isinstance(sync.stages[0].patch_embed.stem.bn, nn.SyncBatchNorm)
    assert isinstance(sync.stages[1].blocks[0].attn.bn, nn.SyncBatchNorm)
    # a BN checkpoint (e.g. an official release) loads into the SyncBN model
    assert list(sync.state_dict()) == list(bn.state_dict())
    sync.load_state_dict(bn.state_dict())
    x = torch.rand(2, 3, 64, 64)
    for a, b in zip(bn(x), sync.eval()(x)):
        assert torch.equal(a, b)
    # without a process group SyncBN trains as BN does
    for a, b in zip(bn.train()(x), sync.train()(x)):
        torch.testing.assert_close(a, b)


def test_group_norm_builds_and_computes_the_reference():
    model = SMT(MINI_ARCH, norm_cfg=dict(type='GN', num_groups=4))
    assert type(model.stages[0].patch_embed.stem.gn) is nn.GroupNorm
    sam = model.stages[0].blocks[0].attn
    assert isinstance(sam, SAM) and type(sam.bn) is nn.GroupNorm
    randomise(model).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for out, ref in zip(model(x), ReferenceSMT(model)(x)):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    out = model.train()(x)
    sum(o.sum() for o in out).backward()
    assert sam.bn.weight.grad is not None


def test_act_cfg_replaces_sam_and_ffn_activations():
    torch.manual_seed(0)
    gelu = randomise(SMT(MINI_ARCH)).eval()
    relu = SMT(MINI_ARCH, act_cfg=dict(type='ReLU')).eval()
    relu.load_state_dict(gelu.state_dict())
    acts = [m.act for m in relu.modules() if hasattr(m, 'act')]
    # SAM in 5 blocks (stages 1-2, and 2 of stage 3's 3), an FFN in all 7
    assert len(acts) == 12 and all(type(a) is nn.ReLU for a in acts)
    # the stem keeps its ReLU, as in the official model
    assert type(relu.stages[0].patch_embed.stem.activate) is nn.ReLU
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(gelu(x)[-1], relu(x)[-1])
        for out, ref in zip(relu(x), ReferenceSMT(relu)(x)):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_layer_norm_cfgs_set_their_norms():
    model = SMT(
        MINI_ARCH,
        transformer_norm_cfg=dict(type='LN', eps=1e-3),
        patch_norm_cfg=dict(type='LN', eps=1e-4))
    token_norms = [model.stages[i].norm for i in range(4)]
    token_norms += [b.norm1 for s in model.stages for b in s.blocks]
    token_norms += [b.norm2 for s in model.stages for b in s.blocks]
    assert {n.eps for n in token_norms} == {1e-3}
    patch_norms = [s.patch_embed.norm for s in model.stages]
    assert {n.eps for n in patch_norms} == {1e-4}


def test_stem_takes_norm_cfg():
    stem = StemEmbed(3, 16, 3, norm_cfg=dict(type='GN', num_groups=2))
    assert type(stem.stem.gn) is nn.GroupNorm


# name: (kwargs, error class, fragments of the one-line message)
BAD_CFGS = {
    'norm_typo': (dict(norm_cfg=dict(type='BNN')), SMTConfigError, [
        "norm_cfg has the unknown type 'BNN' (did you mean 'BN'?)",
        "dict(type='SyncBN')"
    ]),
    'gn_without_groups': (dict(norm_cfg=dict(type='GN')), SMTConfigError,
                          ["norm_cfg={'type': 'GN'} needs num_groups"]),
    'gn_indivisible': (dict(norm_cfg=dict(type='GN', num_groups=3)),
                       SMTConfigError, ['of 16 channels', 'divisible']),
    'norm_not_dict': (dict(norm_cfg='BN'), SMTConfigTypeError,
                      ["norm_cfg must be a dict with a type", "'BN' (str)"]),
    'act_typo':
    (dict(act_cfg=dict(type='GeLU')), SMTConfigError,
     ["act_cfg has the unknown type 'GeLU' (did you mean "
      "'GELU'?)"]),
    'act_bad_arg': (dict(act_cfg=dict(type='GELU', approx='tanh')),
                    SMTConfigError, ['act_cfg=', 'approx']),
    'ln_without_type': (dict(transformer_norm_cfg=dict(eps=1e-6)),
                        SMTConfigTypeError, ['transformer_norm_cfg must be']),
    'patch_norm_typo': (dict(patch_norm_cfg=dict(type='LM')), SMTConfigError,
                        ["patch_norm_cfg has the unknown type 'LM'"]),
}


@pytest.mark.parametrize('name', sorted(BAD_CFGS))
def test_bad_layer_cfg_is_one_line(name):
    kwargs, error, fragments = BAD_CFGS[name]
    with pytest.raises(error) as building:
        SMT(MINI_ARCH, **kwargs)
    with pytest.raises(error) as checking:
        SMT.check_args(arch=MINI_ARCH, **kwargs)
    for err in (building.value, checking.value):
        message = str(err)
        assert message.startswith('SMT: ') and '\n' not in message
        for fragment in fragments:
            assert fragment in message, message


def test_syncbn_and_gn_build_from_a_detection_config():
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    for norm_cfg, norm_type in [(dict(type='SyncBN',
                                      requires_grad=True), nn.SyncBatchNorm),
                                (dict(type='GN', num_groups=8), nn.GroupNorm)]:
        with DefaultScope.overwrite_default_scope('mmdet'):
            model = MODELS.build(
                dict(
                    type='SMT',
                    arch=MINI_ARCH,
                    norm_cfg=norm_cfg,
                    frozen_stages=1))
        assert isinstance(model.stages[2].blocks[0].attn.bn, norm_type)


# ---------------------------------------------------------------------------
# frozen_stages
# ---------------------------------------------------------------------------
def frozen_parts(model):
    """Sub-modules of the stages, by name, that are frozen (no parameter
    requires a gradient and the module stays in eval mode)."""
    model.train()
    parts = {}
    for i, stage in enumerate(model.stages):
        for name in ('patch_embed', 'blocks', 'norm'):
            module = getattr(stage, name)
            frozen = [not p.requires_grad for p in module.parameters()]
            modes = [not m.training for m in module.modules()]
            assert len(set(frozen)) == 1 and set(modes) == set(frozen)
            parts[f'stages.{i}.{name}'] = frozen[0]
    return {name for name, frozen in parts.items() if frozen}


def stage_parts(*stages):
    return {
        f'stages.{i}.{name}'
        for i in stages
        for name in ('patch_embed', 'blocks', 'norm')
    }


@pytest.mark.parametrize('frozen_stages, expected', [
    (-1, set()),
    (0, {'stages.0.patch_embed'}),
    (1, stage_parts(0)),
    (3, stage_parts(0, 1, 2)),
    (4, stage_parts(0, 1, 2, 3)),
])
def test_frozen_stages_follow_mmdet_swin(frozen_stages, expected):
    assert frozen_parts(SMT(MINI_ARCH,
                            frozen_stages=frozen_stages)) == expected


def test_default_freezes_nothing():
    assert SMT(MINI_ARCH).frozen_stages == -1
    assert frozen_parts(SMT(MINI_ARCH)) == set()


def test_frozen_stem_gets_no_gradient_and_keeps_bn_statistics():
    model = SMT(MINI_ARCH, frozen_stages=0).train()
    stem_bn = model.stages[0].patch_embed.stem.bn
    sam_bn = model.stages[0].blocks[0].attn.bn
    before = stem_bn.running_mean.clone(), sam_bn.running_mean.clone()
    sum(o.sum() for o in model(torch.rand(2, 3, 64, 64))).backward()
    assert all(p.grad is None
               for p in model.stages[0].patch_embed.parameters())
    assert all(p.grad is not None for p in model.stages[0].blocks.parameters())
    assert torch.equal(stem_bn.running_mean, before[0])
    assert not torch.equal(sam_bn.running_mean, before[1])


@pytest.mark.parametrize('value', [-2, 5])
def test_frozen_stages_range_is_one_line(value):
    for call in (SMT, SMT.check_args):
        with pytest.raises(SMTConfigError) as err:
            call(arch=MINI_ARCH, frozen_stages=value)
        assert str(err.value) == (
            f'SMT: frozen_stages={value} is out of range; valid values are '
            '-1..4 (-1: nothing, 0: the stem, i: the stem and stages 1..i)')


# ---------------------------------------------------------------------------
# arch presets and dicts
# ---------------------------------------------------------------------------
def test_presets_hold_every_setting():
    keys = {*SMT.required_arch_keys, *SMT.optional_arch_keys}
    for name, settings in SMT.arch_zoo.items():
        assert set(settings) == keys, name
    # the presets differ where the official ones do
    assert SMT.arch_zoo['t']['depths'] == [2, 2, 8, 1]
    assert SMT.arch_zoo['base']['head_conv'] == 7
    assert SMT.arch_zoo['large']['use_layerscale'] is True
    assert SMT.arch_zoo['small']['mlp_ratios'] == [4, 4, 4, 2]


def test_partial_arch_dict_names_the_missing_keys():
    partial = dict(embed_dims=[16, 32, 64, 128], depths=[1, 2, 3, 1])
    for call in (SMT, SMT.check_args):
        with pytest.raises(SMTConfigError) as err:
            call(arch=partial)
        message = str(err.value)
        assert message.startswith(
            "SMT: arch dict is missing key(s) ['mlp_ratios', 'ca_num_heads', "
            "'sa_num_heads', 'ca_attentions', 'head_conv', 'expand_ratio', "
            "'qkv_bias']")
        # the tiny preset's values, to copy
        assert "head_conv=3" in message and '\n' not in message


def test_optional_arch_keys_take_the_official_defaults():
    settings = SMT.parse_arch(dict(MINI_ARCH))
    assert settings['use_layerscale'] is False
    assert settings['layerscale_value'] == 1e-4
    model = SMT(dict(MINI_ARCH, use_layerscale=True, layerscale_value=0.5))
    assert torch.all(model.stages[0].blocks[0].gamma1 == 0.5)


# ---------------------------------------------------------------------------
# versioned state dict
# ---------------------------------------------------------------------------
def test_state_dict_records_the_layout_version():
    state_dict = SMT(MINI_ARCH).state_dict()
    assert SMT._version == 1
    assert state_dict._metadata['']['version'] == SMT._version


def test_every_older_layout_has_an_upgrade_step():
    assert set(SMT.state_dict_upgrades) == set(range(1, SMT._version))


def rename_out_norms(state_dict, prefix):
    """A layout change for the test: version 1 called the stage output
    norms ``out_norm``, version 2 ``norm``."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        parts = key[len(prefix):].split('.')
        if len(parts) == 4 and parts[2] == 'out_norm':
            parts[2] = 'norm'
            state_dict[prefix + '.'.join(parts)] = state_dict.pop(key)


def as_version_1(state_dict, prefix=''):
    """``state_dict`` in the test's old layout, metadata version 1."""
    old = type(state_dict)()
    for key, value in state_dict.items():
        parts = key[len(prefix):].split('.')
        if len(parts) == 4 and parts[2] == 'norm':
            key = prefix + '.'.join(parts[:2] + ['out_norm', parts[3]])
        old[key] = value
    old._metadata = type(state_dict._metadata)(
        (name, dict(meta)) for name, meta in state_dict._metadata.items())
    old._metadata[prefix[:-1]]['version'] = 1
    return old


@pytest.fixture
def layout_v2(monkeypatch):
    """SMT as if version 2 had renamed ``out_norm`` to ``norm``."""
    monkeypatch.setattr(SMT, '_version', 2)
    monkeypatch.setattr(SMT, 'state_dict_upgrades', {1: rename_out_norms})


def test_old_layout_loads_through_load_state_dict(layout_v2):
    source = randomise(SMT(MINI_ARCH))
    old = as_version_1(source.state_dict())
    assert 'stages.0.out_norm.weight' in old
    model = SMT(MINI_ARCH)
    model.load_state_dict(old)  # strict
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # the caller's dict is left as it was
    assert 'stages.0.out_norm.weight' in old


def test_old_layout_of_a_whole_model_loads(layout_v2):
    detector = nn.Module()
    detector.backbone = randomise(SMT(MINI_ARCH))
    old = as_version_1(detector.state_dict(), prefix='backbone.')
    assert 'backbone.stages.3.out_norm.bias' in old
    fresh = nn.Module()
    fresh.backbone = SMT(MINI_ARCH)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.backbone.stages[3].norm.bias,
                       detector.backbone.stages[3].norm.bias)


def test_current_and_unversioned_layouts_are_left_alone(layout_v2):
    current = SMT(MINI_ARCH).state_dict()
    current._metadata['']['version'] = 2
    SMT(MINI_ARCH).load_state_dict(current)
    unversioned = dict(SMT(MINI_ARCH).state_dict())  # no metadata
    SMT(MINI_ARCH).load_state_dict(unversioned)
    # a version-1 dict with no rename to do is still upgraded (not skipped)
    old = as_version_1(SMT(MINI_ARCH).state_dict())
    old._metadata['']['version'] = 2
    with pytest.raises(RuntimeError, match='out_norm'):
        SMT(MINI_ARCH).load_state_dict(old)


def test_old_layout_loads_through_the_strict_loaders(tmp_path, layout_v2):
    from smt_mm.models.utils import load_model_weights
    source = nn.Module()
    source.backbone = randomise(SMT(MINI_ARCH))
    old = as_version_1(source.state_dict(), prefix='backbone.')
    path = str(tmp_path / 'old.pth')
    torch.save(dict(meta=dict(), state_dict=old), path)
    # backbone init_cfg (Pretrained) and pretrained=
    model = SMT(MINI_ARCH, pretrained=path)
    model.init_weights()
    assert torch.equal(model.stages[1].norm.weight,
                       source.backbone.stages[1].norm.weight)
    # a whole model (runner, tools/test.py, demo)
    whole = nn.Module()
    whole.backbone = SMT(MINI_ARCH)
    load_model_weights(whole, path)
    assert torch.equal(whole.backbone.stages[1].norm.weight,
                       source.backbone.stages[1].norm.weight)


# ---------------------------------------------------------------------------
# get_layer_depth
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', [
    'stages.9.blocks.0.norm1.weight',
    'stages.0.blocks.5.norm1.weight',
    'stages.1.blocks.0.attn.nothing.weight',
    'stages.1',
    'norm.weight',
    '',
])
def test_get_layer_depth_refuses_unknown_names(name):
    model = SMT(MINI_ARCH)
    with pytest.raises(SMTConfigError) as err:
        model.get_layer_depth(name)
    assert f'{name!r} is no parameter of this SMT' in str(err.value)
    with pytest.raises(SMTConfigError) as err:
        model.get_layer_depth('backbone.' + name, prefix='backbone.')
    assert "(after the prefix 'backbone.')" in str(err.value)


def test_get_layer_depth_takes_buffers_and_names_outside_the_prefix():
    model = SMT(MINI_ARCH)
    num_layers = sum(MINI_ARCH['depths']) + 2
    assert model.get_layer_depth(
        'stages.0.patch_embed.stem.bn.running_mean') == (0, num_layers)
    assert model.get_layer_depth('neck.weight',
                                 'backbone.') == (num_layers - 1, num_layers)


def test_get_layer_depth_gives_a_subclass_head_the_last_depth():

    class WithHead(SMT):

        def __init__(self, arch):
            super().__init__(arch)
            self.head = nn.Linear(128, 2)

    num_layers = sum(MINI_ARCH['depths']) + 2
    model = WithHead(MINI_ARCH)
    assert model.get_layer_depth('head.weight') == (num_layers - 1, num_layers)
    assert model.get_layer_depth('stages.0.norm.bias') == (1, num_layers)
