# Copyright (c) SMT-MM contributors. All rights reserved.
"""Bad SMT settings are SMTConfigError / SMTConfigTypeError naming the
setting and what would be valid, both when building SMT and from
``SMT.check_args`` (which the tools run on a config before building)."""
import pytest
from helpers import MINI_ARCH

from smt_mm.errors import SMTConfigError, SMTConfigTypeError
from smt_mm.models import SMT

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


def arch(**changes):
    return dict(arch=dict(MINI_ARCH, **changes))


def args(**kwargs):
    return dict(arch=MINI_ARCH, **kwargs)


TYPE, VALUE = SMTConfigTypeError, SMTConfigError
NO_STAGE = dict(MINI_ARCH, **dict.fromkeys(SMT.per_stage_keys, []))
# name: (kwargs, error class, fragments of the message)
BAD = {
    'string_depths': (arch(depths='1231'), TYPE,
                      ["arch['depths'] must be a list", "'1231' (str)"]),
    'string_depth': (arch(depths=[1, '2', 3, 1]), TYPE,
                     ["arch['depths'][1] must be a positive int", "'2'"]),
    'float_depth': (arch(depths=[1, 2.0, 3, 1]), TYPE,
                    ["arch['depths'][1] must be a positive int", '2.0']),
    'none_dims': (arch(embed_dims=None), TYPE,
                  ["arch['embed_dims'] must be a list", 'None']),
    'none_dim': (arch(embed_dims=[16, None, 64, 128]), TYPE,
                 ["arch['embed_dims'][1] must be a positive int", 'None']),
    'zero_depth': (arch(depths=[1, 0, 3, 1]), VALUE,
                   ["arch['depths'][1] must be a positive int, got 0"]),
    'negative_depth':
    (arch(depths=[1, 2, -3, 1]), VALUE, ["arch['depths'][2]", 'got -3']),
    'zero_mlp_ratio': (arch(mlp_ratios=[4, 0, 4, 2]), VALUE,
                       ["arch['mlp_ratios'][1] must be a positive number"]),
    'nan_mlp_ratio': (arch(mlp_ratios=[4, float('nan'), 4, 2]), VALUE,
                      ["arch['mlp_ratios'][1]", 'nan']),
    'zero_kernel': (arch(head_conv=0), VALUE,
                    ["arch['head_conv'] must be a positive int, got 0"]),
    'float_kernel': (arch(head_conv=3.5), TYPE,
                     ["arch['head_conv'] must be a positive int", '3.5']),
    'zero_expand': (arch(expand_ratio=0), VALUE,
                    ["arch['expand_ratio'] must be a positive int"]),
    'zero_ca_heads': (arch(ca_num_heads=[4, 0, 4, -1]), VALUE,
                      ["arch['ca_num_heads'][1] must be a positive int"]),
    'negative_sa_heads': (arch(sa_num_heads=[-1, -1, 8, -16]), VALUE,
                          ["arch['sa_num_heads'][3]", 'got -16']),
    'indivisible_heads': (arch(sa_num_heads=[-1, -1, 8, 3]), VALUE, [
        "arch['embed_dims'][3] (128) must be divisible by "
        "arch['sa_num_heads'][3] (3)"
    ]),
    'bad_ca_attention': (arch(ca_attentions=[1, 1, 2, 0]), TYPE,
                         ["arch['ca_attentions'][2] must be 1", 'got 2']),
    'str_qkv_bias':
    (arch(qkv_bias='yes'), TYPE, ["arch['qkv_bias'] must be True or False"]),
    'no_stage': (dict(arch=NO_STAGE), VALUE, ['no stage']),
    'arch_type': (dict(arch=3), TYPE,
                  ['arch must be a preset name (str) or a dict', '3 (int)']),
    'arch_typo': (dict(arch='tinny'), VALUE,
                  ["unknown arch 'tinny' (did you mean 'tiny'?)"]),
    'arch_key_typo': (dict(arch=dict(depth=[1, 1, 1, 1])), VALUE,
                      ["unknown arch key(s) ['depth'] (did you mean"]),
    'empty_out_indices':
    (args(out_indices=()), VALUE, ['out_indices is empty', '-4..3']),
    'float_out_indices': (args(out_indices=(0, 1.0)), TYPE,
                          ['out_indices entry 1.0 (float) is not an int']),
    'float_out_index': (args(out_indices=2.0), TYPE,
                        ['out_indices must be an int or a list of ints']),
    'duplicate_out_indices':
    (args(out_indices=(3, -1)), VALUE, ['name stage 3 twice']),
    'drop_path_one': (args(drop_path_rate=1.0), VALUE,
                      ['drop_path_rate=1.0 is out of range', '[0, 1)']),
    'drop_path_negative': (args(drop_path_rate=-0.1), VALUE,
                           ['drop_path_rate=-0.1 is out of range']),
    'drop_path_str': (args(drop_path_rate='0.1'), TYPE,
                      ['drop_path_rate must be a number in [0, 1)']),
    'in_channels': (args(in_channels=0), VALUE,
                    ['in_channels must be a positive int, got 0']),
    'frozen_float': (args(frozen_stages=1.0), TYPE,
                     ['frozen_stages must be an int in -1..4']),
    'norm_eval': (args(norm_eval='False'), TYPE,
                  ['norm_eval must be True or False', "'False' (str)"]),
}


@pytest.mark.parametrize('name', sorted(BAD))
def test_bad_setting_is_a_clear_error(name):
    kwargs, error, fragments = BAD[name]
    with pytest.raises(error) as building:
        SMT(**kwargs)
    with pytest.raises(error) as checking:
        SMT.check_args(**kwargs)
    for err in (building.value, checking.value):
        message = str(err)
        assert message.startswith('SMT: ')
        for fragment in fragments:
            assert fragment in message, message


def test_check_args_names_unknown_argument_and_close_match():
    with pytest.raises(SMTConfigTypeError) as err:
        SMT.check_args(archh='tiny')
    message = str(err.value)
    assert "unknown argument 'archh' (did you mean 'arch'?)" in message
    assert 'valid arguments are arch, in_channels, out_indices' in message


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(),
        dict(
            arch='large', out_indices=3, drop_path_rate=0.3, frozen_stages=-1),
        dict(arch=dict(MINI_ARCH, mlp_ratios=[4, 4.5, 4, 2]), with_cp=True),
        # heads a stage never uses are placeholders (-1 in the presets)
        dict(arch=dict(MINI_ARCH, ca_num_heads=[4, 4, 4, 0])),
        dict(init_cfg=dict(type='Pretrained', checkpoint='any.pth')),
    ])
def test_valid_settings_pass(kwargs):
    SMT.check_args(**kwargs)


def test_mixer_head_divisibility_is_a_config_error():
    from smt_mm.models.backbones.smt import MSA, SAM
    with pytest.raises(SMTConfigError, match='modulation heads'):
        SAM(30, num_heads=4)
    with pytest.raises(SMTConfigError, match='attention heads'):
        MSA(30, num_heads=4)
