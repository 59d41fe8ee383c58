# Copyright (c) SMT-MM contributors. All rights reserved.
"""Layer-wise learning-rate decay for detectors and segmentors with SMT.

mmdet's and mmseg's ``LearningRateDecayOptimizerConstructor`` set layer ids
for ConvNeXt (mmseg: also BEiT, MAE) by parameter name and raise a bare
``NotImplementedError`` for any other backbone; mmpretrain's
``LearningRateDecayOptimWrapperConstructor`` asks the whole model for
``get_layer_depth``, which detectors and segmentors lack.
:class:`SMTLayerDecayOptimizerConstructor` takes the ids from the
backbone's own ``get_layer_depth`` and accepts the upstream constructors'
``paramwise_cfg`` (``decay_rate``, ``decay_type``, ``num_layers``).
"""
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from smt_mm.errors import SMTConfigError

DECAY_TYPES = ('layer_wise', 'stage_wise')
# paramwise_cfg keys that set weight decay rules of their own
_DECAY_RULES = ('custom_keys', 'bias_decay_mult', 'norm_decay_mult',
                'flat_decay_mult', 'dwconv_decay_mult')
_NAME = 'SMTLayerDecayOptimizerConstructor'


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SMTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise (or stage-wise) learning-rate decay over the backbone.

    A parameter of the model's ``backbone`` gets the learning rate
    ``lr * decay_rate ** (num_ids - 1 - id)``; everything outside the
    backbone (neck, heads) gets the top id and so the full ``lr``.

    * ``decay_type='layer_wise'``: ``id, num_ids =
      backbone.get_layer_depth(name, 'backbone.')``. On SMT the stem is
      id 0, every block has its own id, a stage's patch embedding shares
      the id of its first block, and the last stage's output norm shares
      the top id with the neck and heads (``num_ids = sum(depths) + 2``;
      see :meth:`SMT.get_layer_depth`). Any backbone with that method
      works.
    * ``decay_type='stage_wise'`` (SMT only): the stem is id 0, stage ``i``
      (its patch embedding, blocks and norm) id ``i + 1``, and the neck,
      heads and the last stage's output norm the top id
      ``num_stages + 1``.

    The number of ids comes from the backbone. ``num_layers`` in
    ``paramwise_cfg`` (what mmdet's and mmseg's ConvNeXt constructor
    needs) is not needed; a value that differs from the backbone's is
    ignored with a warning, so ConvNeXt recipes run unchanged.

    Weight decay and lr multipliers follow mmengine's
    ``DefaultOptimWrapperConstructor``: ``custom_keys`` first, then
    ``bias_decay_mult``, ``norm_decay_mult``, ``dwconv_decay_mult`` and
    ``flat_decay_mult``. A ``paramwise_cfg`` that sets none of these gets
    the rule of the upstream layer-decay constructors: no weight decay on
    biases and 1-D parameters (all normalisation layers included). The
    decay factor multiplies the lr a rule gives (``lr_mult`` included).

    Parameters with the same settings share a param group; each group
    holds ``layer_id``, ``lr_scale`` and ``param_names``.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper's config
            (``optimizer`` with ``lr``).
        paramwise_cfg (dict): ``decay_rate`` (float in (0, 1], required),
            ``decay_type`` (``'layer_wise'``, the default, or
            ``'stage_wise'``), optionally ``num_layers`` and mmengine's
            paramwise options.

    Examples:
        >>> optim_wrapper = dict(
        ...     optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
        ...     constructor='SMTLayerDecayOptimizerConstructor',
        ...     paramwise_cfg=dict(decay_rate=0.9, decay_type='layer_wise',
        ...                        custom_keys={'norm': dict(decay_mult=0.)}))
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        # kept in paramwise_cfg, which is then never empty: mmengine's
        # __call__ skips add_params for an empty one
        paramwise_cfg = dict(paramwise_cfg or {})
        self.decay_rate = paramwise_cfg.get('decay_rate')
        self.decay_type = paramwise_cfg.get('decay_type', 'layer_wise')
        self.num_layers = paramwise_cfg.get('num_layers')
        check_decay_settings(self.decay_rate, self.decay_type)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if self.base_lr is None:
            raise SMTConfigError(f'{_NAME}: optim_wrapper.optimizer has no '
                                 'lr to decay')
        if self.base_wd is not None and not any(key in self.paramwise_cfg
                                                for key in _DECAY_RULES):
            # mmdet's and mmseg's LearningRateDecayOptimizerConstructor
            self.paramwise_cfg.update(bias_decay_mult=0., flat_decay_mult=0.)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module=None) -> None:
        """mmengine's param groups (one per parameter, with the
        multipliers of ``paramwise_cfg``), then the lr of each scaled by
        its layer id, and groups with equal settings merged."""
        if prefix:  # the recursion of mmengine's add_params
            super().add_params(params, module, prefix, is_dcn_module)
            return
        layer_id = layer_id_function(module, self.decay_type)
        groups: List[dict] = []
        super().add_params(groups, module)
        names = {id(p): name for name, p in module.named_parameters()}
        num_ids = None
        merged: Dict[Tuple, dict] = OrderedDict()
        for group in groups:
            (param, ) = group.pop('params')
            name = names[id(param)]
            group_id, num_ids = layer_id(name)
            scale = self.decay_rate**(num_ids - 1 - group_id)
            group['lr'] = group.get('lr', self.base_lr) * scale
            group.update(layer_id=group_id, lr_scale=scale)
            key = tuple(sorted((k, repr(v)) for k, v in group.items()))
            if key not in merged:
                merged[key] = dict(group, params=[], param_names=[])
            merged[key]['params'].append(param)
            merged[key]['param_names'].append(name)
        params.extend(merged.values())
        self._log(module, list(merged.values()), num_ids)

    def _log(self, model: nn.Module, groups: List[dict],
             num_ids: Optional[int]) -> None:
        if num_ids is None:
            return
        backbone = model.backbone
        own = _own_num_ids(backbone, self.decay_type)
        if self.num_layers is not None and self.num_layers + 2 != own:
            print_log(
                f'{_NAME}: paramwise_cfg num_layers={self.num_layers} '
                f'ignored: the {type(backbone).__name__} backbone has '
                f'{own} {self.decay_type} ids (num_layers={own - 2})',
                logger='current',
                level=logging.WARNING)
        lowest = min(group['lr_scale'] for group in groups)
        print_log(
            f'{_NAME}: {self.decay_type} lr decay {self.decay_rate} over '
            f'{num_ids} ids of {type(backbone).__name__} (lowest lr x '
            f'{lowest:.3g}; neck and heads: id {num_ids - 1}, lr x 1), '
            f'{len(groups)} param groups',
            logger='current')
        for group in groups:
            print_log(
                f'layer {group["layer_id"]}: lr={group["lr"]:.4g} '
                f'weight_decay={group.get("weight_decay")}: '
                f'{", ".join(group["param_names"])}',
                logger='current',
                level=logging.DEBUG)


def check_decay_settings(decay_rate, decay_type) -> None:
    """``decay_rate`` and ``decay_type`` of the paramwise_cfg.

    Raises:
        SMTConfigError: A missing or out-of-range ``decay_rate``, an
            unknown ``decay_type``.
    """
    if isinstance(
            decay_rate,
            bool) or not isinstance(decay_rate,
                                    (int, float)) or not 0 < decay_rate <= 1:
        raise SMTConfigError(
            f'{_NAME}: paramwise_cfg needs decay_rate, a number in (0, 1] '
            f'(the lr factor per layer id), got {decay_rate!r}')
    if decay_type not in DECAY_TYPES:
        raise SMTConfigError(
            f'{_NAME}: paramwise_cfg decay_type must be one of '
            f'{", ".join(map(repr, DECAY_TYPES))}, got {decay_type!r}')


def layer_id_function(model: nn.Module, decay_type: str):
    """``name -> (id, number of ids)`` for the parameters of ``model``
    (names as in ``model.named_parameters()``).

    Raises:
        SMTConfigError: The model has no ``backbone``, the backbone no
            ``get_layer_depth``, or ``stage_wise`` on a backbone that is no
            SMT.
    """
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, nn.Module):
        raise SMTConfigError(
            f'{_NAME}: the model ({type(model).__name__}) has no backbone '
            'whose layers could set the learning rates')
    problem = unsupported_backbone(type(backbone), decay_type)
    if problem:
        raise SMTConfigError(f'{_NAME}: {problem}')
    if decay_type == 'layer_wise':
        return lambda name: backbone.get_layer_depth(name, 'backbone.')
    ends = [sum(backbone.depths[:i + 1]) for i in range(len(backbone.depths))]
    top = backbone.num_stages + 1

    def stage_id(name):
        depth, num_depths = backbone.get_layer_depth(name, 'backbone.')
        if depth == num_depths - 1:
            return top, top + 1
        return sum(depth > end for end in [0] + ends[:-1]), top + 1

    return stage_id


def unsupported_backbone(backbone_cls: type,
                         decay_type: str = 'layer_wise') -> Optional[str]:
    """Why :class:`SMTLayerDecayOptimizerConstructor` cannot set the
    layer ids of a backbone class, or None when it can."""
    from smt_mm.models import SMT
    name = backbone_cls.__name__
    if not hasattr(backbone_cls, 'get_layer_depth'):
        return (f'the backbone {name} has no get_layer_depth(param_name, '
                'prefix) to take the layer ids from (SMT has)')
    if decay_type == 'stage_wise' and not issubclass(backbone_cls, SMT):
        return (f"decay_type='stage_wise' needs an SMT backbone, not "
                f"{name}; use decay_type='layer_wise'")
    return None


def _own_num_ids(backbone: nn.Module, decay_type: str) -> int:
    if decay_type == 'stage_wise':
        return backbone.num_stages + 2
    return backbone.get_layer_depth('', 'backbone.')[1]
