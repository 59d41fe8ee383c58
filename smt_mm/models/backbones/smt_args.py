# Copyright (c) SMT-MM contributors. All rights reserved.
"""Argument checks of the SMT backbone.

:class:`~smt_mm.models.backbones.smt.SMT` runs :func:`checked_args` on its
constructor's arguments and :func:`check_input_size` on every input;
``SMT.check_args`` and ``SMT.parse_arch`` are the public entries (tools run
them on a config before building anything). Bad settings raise
:class:`~smt_mm.errors.SMTConfigError` (a value out of range) or
:class:`~smt_mm.errors.SMTConfigTypeError` (a wrong type or an unknown
name) with one line naming the setting and what would be valid.

The functions taking ``model_cls`` read the architecture tables of that
class (``arch_zoo``, ``required_arch_keys``, ``optional_arch_keys``,
``per_stage_keys``, ``hybrid_stage``), so a subclass may change them.
"""
import difflib
import inspect
import math
from copy import deepcopy
from typing import Dict, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.registry import MODELS

from smt_mm.errors import SMTConfigError, SMTConfigTypeError

# mmengine's model zoo schemes: their names are weights of other backbones
# (mmseg's base configs set e.g. model.pretrained='open-mmlab://resnet50_v1c')
ZOO_SCHEMES = ('open-mmlab://', 'torchvision://', 'mmcls://')


def _is_int(value) -> bool:
    """An int that is not a bool (``True`` would pass as 1 otherwise)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(value) -> str:
    return f'{value!r} ({type(value).__name__})'


def _check_positive(name: str, value, integer: bool = True) -> None:
    """Raise unless ``value`` is a positive int (any finite positive number
    when ``integer`` is False), naming the setting."""
    kind = 'a positive int' if integer else 'a positive number'
    if not (_is_int(value) if integer else _is_number(value)):
        raise SMTConfigTypeError(
            f'SMT: {name} must be {kind}, got {_describe(value)}')
    # written so that NaN fails too
    if not (value > 0 and math.isfinite(value)):
        raise SMTConfigError(f'SMT: {name} must be {kind}, got {value}')


def _did_you_mean(key: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, if any."""
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f' (did you mean {close[0]!r}?)' if close else ''


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise SMTConfigTypeError(
            f'SMT: {name} must be True or False, got {_describe(value)}')


def check_divisible(embed_dims: int, num_heads: int, heads: str) -> None:
    """``embed_dims`` splits evenly over ``num_heads`` heads (``heads``
    names their kind in the message)."""
    if embed_dims % num_heads:
        raise SMTConfigError(
            f'embed_dims ({embed_dims}) must be divisible by the number '
            f'of {heads} heads ({num_heads})')


# What each layer config of SMT builds, and valid examples for messages.
_LAYER_KINDS = dict(
    norm_cfg=('norm', "dict(type='BN'), dict(type='SyncBN') or "
              "dict(type='GN', num_groups=32)"),
    act_cfg=('activation', "dict(type='GELU') or dict(type='ReLU')"),
    transformer_norm_cfg=('norm', "dict(type='LN', eps=1e-6)"),
    patch_norm_cfg=('norm', "dict(type='LN')"),
)


def _check_layer_cfg(name: str, cfg, widths: Sequence[int]) -> None:
    """``cfg`` (the argument ``name``) builds its layer: a norm for each of
    ``widths`` channels, or an activation when ``widths`` is empty."""
    kind, examples = _LAYER_KINDS[name]
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise SMTConfigTypeError(
            f'SMT: {name} must be a dict with a type, e.g. {examples}; got '
            f'{_describe(cfg)}')
    layer = cfg['type']
    if isinstance(layer, str):
        # where mmcv's builders look the type up
        with MODELS.switch_scope_and_registry(None) as registry:
            layer = registry.get(cfg['type'])
        if layer is None:
            names = {n.lower(): n for n in MODELS.module_dict}
            close = difflib.get_close_matches(cfg['type'].lower(), names, 1)
            hint = f' (did you mean {names[close[0]]!r}?)' if close else ''
            raise SMTConfigError(
                f"SMT: {name} has the unknown type {cfg['type']!r}{hint}; "
                f'valid {kind} configs are e.g. {examples}')
    if isinstance(layer, type) and issubclass(layer, nn.GroupNorm) and \
            'num_groups' not in cfg:
        # mmcv asserts this without a message
        raise SMTConfigError(f'SMT: {name}={cfg!r} needs num_groups, e.g. '
                             "dict(type='GN', num_groups=32)")
    try:
        for width in widths:
            build_norm_layer(cfg, width)
        if not widths:
            build_activation_layer(cfg)
    except Exception as err:
        reason = ' '.join(str(err).split())
        size = f' of {width} channels' if widths else ''
        raise SMTConfigError(f'SMT: {name}={cfg!r} does not build a {kind} '
                             f'layer{size}: {reason}') from None


def pretrained_init_cfg(pretrained, init_cfg):
    """The ``init_cfg`` an SMT built with ``pretrained`` and ``init_cfg``
    gets: ``init_cfg`` when ``pretrained`` is None, else a ``Pretrained``
    init from the checkpoint ``pretrained`` names (mmseg's meaning)."""
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, str) or not pretrained:
        raise SMTConfigTypeError(
            'SMT: pretrained must be a checkpoint path or URL (a non-empty '
            f'str) or None, got {_describe(pretrained)}')
    origin = ("(mmseg segmentors copy the config's model.pretrained into "
              'the backbone)')
    if init_cfg:
        raise SMTConfigError(
            f'SMT: pretrained={pretrained!r} and init_cfg={init_cfg!r} are '
            'both set; keep one: pretrained=P means init_cfg=dict(type='
            f"'Pretrained', checkpoint=P) {origin}; to keep init_cfg, set "
            'model.pretrained=None')
    if pretrained.startswith(ZOO_SCHEMES):
        raise SMTConfigError(
            f'SMT: pretrained={pretrained!r} names weights of another '
            f"backbone in mmengine's model zoo, which has no SMT {origin}; "
            'set model.pretrained=None, or to an SMT checkpoint path or URL '
            "such as 'https://github.com/AFeng-x/SMT/releases/download/"
            "v1.0.0/smt_tiny.pth'")
    return dict(type='Pretrained', checkpoint=pretrained)


def check_args(model_cls, kwargs: Dict) -> None:
    """``SMT.check_args``: check keyword arguments of ``model_cls``'s
    constructor (those not given take their defaults) without building
    it; an unknown name is a :class:`SMTConfigTypeError` suggesting the
    closest valid one."""
    params = inspect.signature(model_cls.__init__).parameters
    names = [name for name in params if name != 'self']
    for key in kwargs:
        if key not in names:
            raise SMTConfigTypeError(
                f'SMT: unknown argument {key!r}{_did_you_mean(key, names)}'
                f'; valid arguments are {", ".join(names)}')
    args = {name: params[name].default for name in names}
    args.update(kwargs)
    checked_args(model_cls, **args)


def checked_args(model_cls, arch, in_channels, out_indices, drop_path_rate,
                 frozen_stages, norm_eval, with_cp, norm_cfg, act_cfg,
                 transformer_norm_cfg, patch_norm_cfg, pretrained,
                 init_cfg) -> Dict:
    """Check the constructor's arguments; return the full arch settings
    (``arch``), the non-negative ``out_indices`` and the ``init_cfg``
    that ``pretrained`` stands for."""
    settings = parse_arch(model_cls, arch)
    num_stages = len(settings['depths'])
    _check_positive('in_channels', in_channels)
    out_indices = _check_out_indices(out_indices, num_stages)
    if not _is_number(drop_path_rate):
        raise SMTConfigTypeError(
            'SMT: drop_path_rate must be a number in [0, 1), got '
            f'{_describe(drop_path_rate)}')
    if not 0 <= drop_path_rate < 1:
        raise SMTConfigError(
            f'SMT: drop_path_rate={drop_path_rate} is out of range; '
            'valid values are in [0, 1) (1 would drop every block)')
    _check_frozen_stages(frozen_stages, num_stages)
    _check_bool('norm_eval', norm_eval)
    _check_bool('with_cp', with_cp)
    _check_layer_cfgs(
        settings,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        transformer_norm_cfg=transformer_norm_cfg,
        patch_norm_cfg=patch_norm_cfg)
    init_cfg = pretrained_init_cfg(pretrained, init_cfg)
    return dict(arch=settings, out_indices=out_indices, init_cfg=init_cfg)


def parse_arch(model_cls, arch: Union[str, Dict]) -> Dict:
    """``SMT.parse_arch``: the full, checked settings of ``arch`` (a name
    of ``model_cls.arch_zoo`` or a dict of settings), a copy with the
    optional keys filled in."""
    if isinstance(arch, str):
        key = arch.lower()
        if key not in model_cls.arch_zoo:
            raise SMTConfigError(
                f'SMT: unknown arch {arch!r}'
                f'{_did_you_mean(key, model_cls.arch_zoo)}; valid names are '
                f'{sorted(model_cls.arch_zoo)} or a dict of settings')
        return deepcopy(model_cls.arch_zoo[key])
    if not isinstance(arch, dict):
        raise SMTConfigTypeError(
            'SMT: arch must be a preset name (str) or a dict of '
            f'settings, got {_describe(arch)}')
    required = model_cls.required_arch_keys
    valid = sorted([*required, *model_cls.optional_arch_keys])
    unknown = sorted(set(arch) - set(valid), key=str)
    if unknown:
        raise SMTConfigError(
            f'SMT: unknown arch key(s) {unknown}'
            f'{_did_you_mean(str(unknown[0]), valid)}; valid keys are '
            f'{valid}')
    missing = [k for k in required if k not in arch]
    if missing:
        tiny = ', '.join(f'{k}={model_cls.arch_zoo["tiny"][k]!r}'
                         for k in missing)
        raise SMTConfigError(
            f'SMT: arch dict is missing key(s) {missing}; a dict names '
            f'all of {list(required)} (use_layerscale and '
            'layerscale_value are optional), or use a preset name; the '
            f'tiny preset has {tiny}')
    settings = deepcopy(model_cls.optional_arch_keys)
    settings.update(deepcopy(dict(arch)))
    _check_stage_lists(settings, model_cls.per_stage_keys)
    for i in range(len(settings['depths'])):
        _check_stage(settings, i, model_cls.hybrid_stage)
    for key in ('head_conv', 'expand_ratio'):
        _check_positive(f'arch[{key!r}]', settings[key])
    for key in ('qkv_bias', 'use_layerscale'):
        _check_bool(f'arch[{key!r}]', settings[key])
    if settings['use_layerscale']:
        _check_positive(
            "arch['layerscale_value']",
            settings['layerscale_value'],
            integer=False)
    return settings


def _check_layer_cfgs(settings: Dict, **cfgs: Dict) -> None:
    """Each layer config builds its layers: the norms at every width they
    are used at, the activation once."""
    dims = settings['embed_dims']
    sam_dims = [
        d * settings['expand_ratio']
        for d, sam in zip(dims, settings['ca_attentions']) if sam
    ]
    widths = dict(
        norm_cfg=[dims[0], *sam_dims],
        act_cfg=[],
        transformer_norm_cfg=dims,
        patch_norm_cfg=dims)
    for name, cfg in cfgs.items():
        _check_layer_cfg(name, cfg, sorted(set(widths[name])))


def _check_stage_lists(settings: Dict, per_stage_keys: Sequence[str]) -> None:
    """Per-stage settings are lists (not strings) of one length."""
    for key in per_stage_keys:
        if not isinstance(settings[key], (list, tuple)):
            raise SMTConfigTypeError(
                f'SMT: arch[{key!r}] must be a list with one entry per '
                f'stage, got {_describe(settings[key])}')
    lengths = {k: len(settings[k]) for k in per_stage_keys}
    if len(set(lengths.values())) != 1:
        raise SMTConfigError('SMT: per-stage arch settings must have '
                             f'one entry per stage, got lengths '
                             f'{lengths}')
    if not lengths['depths']:
        raise SMTConfigError('SMT: arch has no stage; per-stage '
                             'settings need at least one entry')


def _check_stage(settings: Dict, i: int, hybrid_stage: int) -> None:
    """Sizes of stage ``i``, and the head counts its blocks use (the others
    are placeholders, -1 in the presets); ``hybrid_stage`` alternates SAM
    and MSA blocks."""
    for key in ('embed_dims', 'depths'):
        _check_positive(f'arch[{key!r}][{i}]', settings[key][i])
    _check_positive(
        f"arch['mlp_ratios'][{i}]", settings['mlp_ratios'][i], integer=False)
    use_sam = settings['ca_attentions'][i]
    if not (isinstance(use_sam, int) and use_sam in (0, 1)):
        raise SMTConfigTypeError(
            f"SMT: arch['ca_attentions'][{i}] must be 1 (SAM blocks) or "
            f'0 (self-attention blocks), got {_describe(use_sam)}')
    hybrid = i == hybrid_stage and settings['depths'][i] > 1
    uses = dict(ca_num_heads=use_sam, sa_num_heads=not use_sam or hybrid)
    for key, used in uses.items():
        if not used:
            continue
        heads, dims = settings[key][i], settings['embed_dims'][i]
        _check_positive(f'arch[{key!r}][{i}]', heads)
        if dims % heads:
            raise SMTConfigError(
                f"SMT: arch['embed_dims'][{i}] ({dims}) must be "
                f'divisible by arch[{key!r}][{i}] ({heads})')


def _check_out_indices(out_indices, num_stages: int) -> Tuple[int, ...]:
    valid = f'-{num_stages}..{num_stages - 1}'
    if _is_int(out_indices):
        out_indices = [out_indices]
    if not isinstance(out_indices, (list, tuple)):
        raise SMTConfigTypeError(
            f'SMT: out_indices must be an int or a list of ints in '
            f'{valid}, got {_describe(out_indices)}')
    if not out_indices:
        raise SMTConfigError('SMT: out_indices is empty; name at least '
                             f'one stage, valid entries are {valid}')
    checked = []
    for index in out_indices:
        if not _is_int(index):
            raise SMTConfigTypeError(
                f'SMT: out_indices entry {_describe(index)} is not an '
                f'int; valid entries are ints in {valid}')
        if not -num_stages <= index < num_stages:
            raise SMTConfigError(
                f'SMT: out_indices entry {index} is out of range; valid '
                f'entries are {valid}')
        if index % num_stages in checked:
            raise SMTConfigError(
                f'SMT: out_indices {list(out_indices)} name stage '
                f'{index % num_stages} twice; list each stage once')
        checked.append(index % num_stages)
    return tuple(checked)


def _check_frozen_stages(frozen_stages, num_stages: int) -> None:
    valid = (f'-1..{num_stages} (-1: nothing, 0: the stem, i: the stem '
             'and stages 1..i)')
    if not _is_int(frozen_stages):
        raise SMTConfigTypeError(
            f'SMT: frozen_stages must be an int in {valid}, got '
            f'{_describe(frozen_stages)}')
    if not -1 <= frozen_stages <= num_stages:
        raise SMTConfigError(
            f'SMT: frozen_stages={frozen_stages} is out of range; valid '
            f'values are {valid}')


def check_input_size(x: torch.Tensor, min_size: int) -> torch.Tensor:
    """Return ``x`` if it is an (N, C, H, W) input of at least ``min_size``
    pixels a side.

    SMT registers this with ``torch.fx.wrap``: a symbolic trace records the
    call instead of testing the shapes of proxies, and the traced module
    runs it on every real input (its result feeds the model, so dead-code
    elimination keeps it).
    """
    if x.dim() != 4:
        raise SMTConfigError(f'SMT: expected a 4-D (N, C, H, W) input, '
                             f'got shape {tuple(x.shape)}')
    height, width = x.shape[-2:]
    if min(height, width) < min_size:
        raise SMTConfigError(
            f'SMT: input {height}x{width} (HxW) is smaller than the '
            f'minimum {min_size}x{min_size}; '
            'resize or pad the images to at least that size')
    return x
