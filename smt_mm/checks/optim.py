# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks of a config's optimizer settings for the model they train.

Settings written for other backbones either mean something else on SMT or
stop the run at its first step with an error that names neither the
setting nor a fix: a ``'norm'`` custom key misses SMT's BatchNorm layers
(named ``bn``), and the layer-decay constructors of mmdet, mmseg and
mmpretrain handle ConvNeXt, BEiT/MAE or models with ``get_layer_depth``
only. Here the first is adapted with one warning line and the second is
adapted (mmdet's and mmseg's constructor on SMT) or refused in one line.
"""
import copy
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config

from smt_mm.engine.optim_constructors import (
    SMTLayerDecayOptimizerConstructor, check_decay_settings,
    unsupported_backbone)
from smt_mm.errors import LaunchError, SMTError
from .config import _lookup, _registries, smt_backbone

SMT_CONSTRUCTOR = 'SMTLayerDecayOptimizerConstructor'


# ---------------------------------------------------------------------------
# custom keys that aim at norm layers by name
# ---------------------------------------------------------------------------
def _custom_keys(cfg: Config) -> Optional[dict]:
    wrapper = cfg.get('optim_wrapper')
    paramwise = wrapper.get('paramwise_cfg') if isinstance(wrapper,
                                                           dict) else None
    custom = paramwise.get('custom_keys') if isinstance(paramwise,
                                                        dict) else None
    return custom if isinstance(custom, dict) and custom else None


def smt_unnamed_norm_layers(backbone: dict) -> List[Tuple[str, str, int]]:
    """``(module name, kind, number of parameters)`` of the normalisation
    layers of the SMT a config dict describes whose names do not contain
    ``'norm'`` (with the default ``norm_cfg``: the stem's and each SAM
    block's BatchNorm, ``bn``). The SMT is built on the meta device."""
    from mmengine.utils.dl_utils.parrots_wrapper import (_BatchNorm,
                                                         _InstanceNorm)
    from torch.nn import GroupNorm, LayerNorm

    from smt_mm.models import SMT
    kinds = ((_BatchNorm, 'BatchNorm'), (GroupNorm, 'GroupNorm'),
             (_InstanceNorm, 'InstanceNorm'), (LayerNorm, 'LayerNorm'))
    kwargs = {
        k: v
        for k, v in backbone.items()
        if k not in ('type', '_scope_', 'init_cfg', 'pretrained')
    }
    with torch.device('meta'):
        model = SMT(**copy.deepcopy(kwargs))
    found = []
    for name, module in model.named_modules():
        kind = next((k for cls, k in kinds if isinstance(module, cls)), None)
        params = len(list(module.parameters(recurse=False)))
        if kind and params and 'norm' not in name.split('.')[-1]:
            found.append((name, kind, params))
    return found


def cover_smt_norm_layers(cfg: Config) -> Optional[str]:
    """Make a custom key that aims at norm layers by name (``'norm'``, as
    the Swin-era recipes write it: ``custom_keys={'norm':
    dict(decay_mult=0.)}``, meaning "no weight decay on normalisation
    layers") cover SMT's normalisation layers whose names lack it: the
    BatchNorms ``stages.0.patch_embed.stem.bn`` and ``...attn.bn`` of the
    SAM blocks (18 parameters on SMT-T), which otherwise keep weight decay.

    Each such layer is treated as if it were named ``norm``: when the key
    that would then win (mmengine: the longest matching key) is not the
    one that wins for its real name, the layer's own name is added as a
    custom key with that key's multipliers (keys the config already has
    are kept). Returns the one warning line, or None when nothing changed.
    """
    backbone = smt_backbone(cfg)
    custom = _custom_keys(cfg)
    if backbone is None or custom is None:
        return None
    try:
        layers = smt_unnamed_norm_layers(backbone)
    except (SMTError, TypeError, ValueError, RuntimeError):  # model check
        return None
    order = sorted(sorted(custom), key=len, reverse=True)

    def winner(name):
        return next((key for key in order if key in name), None)

    covered: Dict[str, List] = {}  # key -> [kinds, parameters]
    for name, kind, params in layers:
        full = f'backbone.{name}'
        alias = full.rsplit('.', 1)[0] + '.norm'
        key = winner(f'{alias}.weight')
        if key is None or key == winner(f'{full}.weight') or full in custom:
            continue
        custom[full] = copy.deepcopy(custom[key])
        entry = covered.setdefault(key, [[], 0])
        if kind not in entry[0]:
            entry[0].append(kind)
        entry[1] += params
    if not covered:
        return None
    parts = [
        f"custom key {key!r} also covers SMT's {'/'.join(kinds)} layers "
        f'({count} parameters)' for key, (kinds, count) in covered.items()
    ]
    return 'SMT: ' + '; '.join(parts)


# ---------------------------------------------------------------------------
# layer-wise learning-rate decay
# ---------------------------------------------------------------------------
def _upstream_decay_constructor(cls) -> Optional[str]:
    """``'mmdet'``/``'mmseg'`` for their ``LearningRateDecayOptimizer
    Constructor`` (``'mmseg-beit'`` for mmseg's ``LayerDecayOptimizer
    Constructor``), ``'mmpretrain'`` for mmpretrain's ``LearningRateDecay
    OptimWrapperConstructor``, else None."""
    module = getattr(cls, '__module__', '') or ''
    name = getattr(cls, '__name__', '')
    package = module.split('.')[0]
    if package in ('mmdet', 'mmseg') and \
            name == 'LearningRateDecayOptimizerConstructor':
        return package
    if package == 'mmseg' and name == 'LayerDecayOptimizerConstructor':
        return 'mmseg-beit'
    if package == 'mmpretrain' and \
            name == 'LearningRateDecayOptimWrapperConstructor':
        return 'mmpretrain'
    return None


def _model_classes(cfg: Config):
    """The classes (or builders) of ``cfg.model`` and of its backbone, each
    None when it cannot be looked up."""
    scope = cfg.get('default_scope')
    model = cfg.get('model')
    registries = _registries(scope)
    if not isinstance(model, dict) or registries is None:
        return None, None

    def lookup(node):
        if not isinstance(node, dict) or not isinstance(node.get('type'), str):
            return None
        found = _registries(node.get('_scope_', scope)) or registries
        return _lookup(node['type'], found)

    return lookup(model), lookup(model.get('backbone'))


def check_layer_decay(cfg: Config) -> Optional[str]:
    """The optimizer-wrapper constructor of a layer-decay config against
    the model it will build.

    * mmdet's or mmseg's ``LearningRateDecayOptimizerConstructor`` (ConvNeXt
      only; mmseg's also BEiT/MAE) on SMT is replaced by
      :class:`~smt_mm.engine.SMTLayerDecayOptimizerConstructor`, which reads
      the same ``paramwise_cfg``: returns the warning line saying so;
    * that constructor on another backbone it has no ids for, mmseg's
      BEiT ``LayerDecayOptimizerConstructor`` on SMT, mmpretrain's
      ``LearningRateDecayOptimWrapperConstructor`` on a model or backbone
      without ``get_layer_depth``, and SMT-MM's constructor on a backbone
      without ``get_layer_depth`` (or ``stage_wise`` on a backbone that is
      no SMT) are one :class:`LaunchError` line each (instead of a bare
      ``NotImplementedError`` at the first step).
    """
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict) or not isinstance(
            wrapper.get('constructor'), str):
        return None
    registries = _registries(cfg.get('default_scope'))
    registry = (registries or {}).get('OPTIM_WRAPPER_CONSTRUCTORS')
    if registry is None:
        return None
    name = wrapper['constructor']
    try:
        constructor = registry.get(name)
    except Exception:
        constructor = None
    if constructor is None:
        return None
    model_cls, backbone_cls = _model_classes(cfg)
    paramwise = dict(wrapper.get('paramwise_cfg') or {})
    is_smt = smt_backbone(cfg) is not None
    where = f'optim_wrapper.constructor={name!r}'
    backbone_name = getattr(backbone_cls, '__name__', None) or str(
        (cfg.model.get('backbone') or {}).get('type'))

    def check_paramwise():
        try:
            check_decay_settings(
                paramwise.get('decay_rate'),
                paramwise.get('decay_type', 'layer_wise'))
        except SMTError as err:
            raise LaunchError(f'{where}: {err}') from None

    if isinstance(constructor, type) and issubclass(
            constructor, SMTLayerDecayOptimizerConstructor):
        check_paramwise()
        if isinstance(backbone_cls, type):
            problem = unsupported_backbone(
                backbone_cls, paramwise.get('decay_type', 'layer_wise'))
            if problem:
                raise LaunchError(f'{where}: {problem}')
        return None
    upstream = _upstream_decay_constructor(constructor)
    if upstream in ('mmdet', 'mmseg'):
        if is_smt:
            check_paramwise()
            wrapper['constructor'] = SMT_CONSTRUCTOR
            return (f'SMT: {where} ({upstream}\'s, for ConvNeXt) runs as '
                    f'{SMT_CONSTRUCTOR!r}: the same paramwise_cfg, layer '
                    'ids from SMT.get_layer_depth, num_layers from the '
                    'backbone')
        handled = ('ConvNeXt', ) if upstream == 'mmdet' else ('ConvNeXt',
                                                              'BEiT', 'MAE')
        if backbone_cls is not None and not any(h in backbone_name
                                                for h in handled):
            raise LaunchError(
                f'{where} ({upstream}\'s) sets layer ids for '
                f'{"/".join(handled)} backbones only, not for '
                f'model.backbone {backbone_name} (it would stop at the '
                f'first step with NotImplementedError): use '
                f'{SMT_CONSTRUCTOR!r} with a backbone that has '
                'get_layer_depth (SMT), or remove the constructor')
    elif upstream == 'mmseg-beit' and is_smt:
        raise LaunchError(
            f"{where} (mmseg's) sets layer ids for BEiT/MAE backbones "
            f"only: for SMT use constructor={SMT_CONSTRUCTOR!r} with "
            f"paramwise_cfg=dict(decay_rate="
            f"{paramwise.get('layer_decay_rate', 0.9)}, "
            "decay_type='layer_wise')")
    elif upstream == 'mmpretrain':
        if isinstance(model_cls,
                      type) and not hasattr(model_cls, 'get_layer_depth'):
            raise LaunchError(
                f"{where} (mmpretrain's) asks the model for "
                f'get_layer_depth, which {model_cls.__name__} has not '
                '(mmdet detectors and mmseg segmentors): use '
                f'constructor={SMT_CONSTRUCTOR!r} with paramwise_cfg='
                f"dict(decay_rate={paramwise.get('layer_decay_rate', 0.9)}"
                ", decay_type='layer_wise')")
        if isinstance(backbone_cls,
                      type) and not hasattr(backbone_cls, 'get_layer_depth'):
            raise LaunchError(
                f"{where} (mmpretrain's) needs a backbone with "
                f'get_layer_depth(param_name, prefix), which '
                f'{backbone_name} has not: use one that has (SMT), or '
                'remove the constructor')
    return None


def check_optim_settings(cfg: Config) -> List[str]:
    """:func:`cover_smt_norm_layers` and :func:`check_layer_decay`; returns
    the warning lines (the tools print each once, when they read the
    config, after those of
    :func:`~smt_mm.checks.config.check_peer_settings`).

    Raises:
        LaunchError: A layer-decay constructor that cannot set the layer
            ids of the model.
    """
    lines = [cover_smt_norm_layers(cfg), check_layer_decay(cfg)]
    return [line for line in lines if line]
