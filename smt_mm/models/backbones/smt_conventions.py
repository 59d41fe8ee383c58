# Copyright (c) SMT-MM contributors. All rights reserved.
"""What the SMT backbone does for OpenMMLab's tools beyond the paper's
model: parameter depths for layer-wise learning rate decay, state-dict
layout versions, and mmdet's ``frozen_stages`` / ``norm_eval``."""
from typing import Dict, Optional, Tuple

from torch.nn.modules.batchnorm import _BatchNorm

from smt_mm.checkpoint import check_load_in_hook
from smt_mm.errors import SMTConfigError


class SMTConventions:
    """Mixin of :class:`~smt_mm.models.backbones.smt.SMT` (before
    ``BaseModule`` in its bases). It reads the model's ``depths``,
    ``num_stages``, ``stages``, ``frozen_stages`` and ``norm_eval``, and
    the class's ``_version`` and ``state_dict_upgrades``."""

    # -- layer-wise learning rate decay ---------------------------------
    def get_layer_depth(self,
                        param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """The layer-wise depth of a parameter, for layer-wise learning rate
        decay (mmpretrain's ``LearningRateDecayOptimWrapperConstructor``).

        Depth 0 is the stem (stage 1's patch embedding); then every block
        has its own depth, counted over the stages in order. A later
        stage's patch embedding shares the depth of the stage's first
        block, and a stage's output norm that of its last block (it feeds
        the next stage). The last stage's norm only normalises the
        backbone's output and, as mmpretrain does for the final norms of
        its transformers, takes the last depth together with everything
        outside the backbone (neck, head), which keeps the full rate.

        Args:
            param_name (str): Name of the parameter in the whole model.
            prefix (str): The backbone's prefix in that name, e.g.
                ``'backbone.'``; names without it are outside the backbone.
                Defaults to ''.

        Returns:
            Tuple[int, int]: The parameter's depth and the number of depths
            (``sum(depths) + 2``).

        Raises:
            SMTConfigError: ``param_name`` has the prefix but names no
                parameter (or buffer) of this backbone.

        Examples:
            >>> from smt_mm.models import SMT
            >>> model = SMT('tiny')
            >>> model.get_layer_depth('stages.1.blocks.0.attn.v.weight')
            (3, 15)
            >>> model.get_layer_depth('head.fc.weight', prefix='backbone.')
            (14, 15)
        """
        num_layers = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        if not self._has_tensor(name):
            where = f' (after the prefix {prefix!r})' if prefix else ''
            raise SMTConfigError(
                f'SMT.get_layer_depth: {name!r}{where} is no parameter of '
                'this SMT; names outside the prefix get the last depth, '
                f'{num_layers - 1}')
        parts = name.split('.')
        if parts[0] != 'stages':  # a subclass's own, e.g. a classifier
            return num_layers - 1, num_layers
        stage = int(parts[1])
        before = sum(self.depths[:stage])
        if parts[2] == 'patch_embed':
            depth = before + 1 if stage else 0
        elif parts[2] == 'blocks':
            depth = before + int(parts[3]) + 1
        elif stage == self.num_stages - 1:
            depth = num_layers - 1
        else:
            depth = before + self.depths[stage]
        return depth, num_layers

    def _has_tensor(self, name: str) -> bool:
        """Whether ``name`` is a parameter or buffer of this module."""
        for get in (self.get_parameter, self.get_buffer):
            try:
                get(name)
                return True
            except AttributeError:
                pass
        return False

    # -- state-dict layout versions -------------------------------------
    @classmethod
    def upgrade_state_dict(cls,
                           state_dict: Dict,
                           prefix: str = '',
                           version: Optional[int] = None) -> None:
        """Rename, in place, the keys of an SMT state dict saved with the
        layout ``version`` to the current layout (``SMT._version``).

        ``version`` None (a state dict without version metadata: an
        official release file after conversion, a dict built by hand) and
        the current version are left as they are.

        Args:
            state_dict (dict): The state dict, changed in place.
            prefix (str): The backbone's prefix in its keys, e.g.
                ``'backbone.'``. Defaults to ''.
            version (int, optional): The layout the dict was saved with
                (``state_dict._metadata[name]['version']``).

        Examples:
            >>> from smt_mm.models import SMT
            >>> state_dict = SMT('tiny').state_dict()
            >>> version = state_dict._metadata['']['version']
            >>> SMT.upgrade_state_dict(state_dict, version=version)
        """
        if version is None:
            return
        for old in range(version, cls._version):
            cls.state_dict_upgrades[old](state_dict, prefix)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args,
                              **kwargs):
        """Upgrade an older layout (see ``_version``), then check the keys
        and values strictly for loaders that do not (mmengine's
        ``load_checkpoint``, a plain ``load_state_dict``)."""
        self.upgrade_state_dict(state_dict, prefix,
                                local_metadata.get('version'))
        check_load_in_hook(self, state_dict, prefix, 'the SMT backbone')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      *args, **kwargs)

    # -- frozen stages and norm_eval -----------------------------------
    def _freeze_stages(self):
        """Freeze as ``frozen_stages`` says (see :class:`SMT`'s arguments)."""
        if self.frozen_stages < 0:
            return
        frozen = [self.stages[0].patch_embed]
        frozen += self.stages[:self.frozen_stages]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
