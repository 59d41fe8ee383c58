# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT in timm's model registry (optional extra ``timm``).

Importing this module (``import smt_mm.models.timm_models``; ``import
smt_mm`` does not, and does not need timm) registers ``smt_t``, ``smt_s``,
``smt_b`` and ``smt_l`` with timm, so code that picks backbones by timm name
(detectron2, Hugging Face, ultralytics wrappers) can build SMT::

    import timm
    import smt_mm.models.timm_models  # noqa: F401
    model = timm.create_model('smt_t', pretrained=True,
                              pretrained_cfg_overlay=dict(file='smt_tiny.pth'))
    features = timm.create_model('smt_t', features_only=True,
                                 out_indices=(1, 2, 3))
    features.feature_info.channels()   # [128, 256, 512]

The model is the toolkit's :class:`~smt_mm.models.SMT` backbone (a
subclass adds the classifier of the official model: mean over the last
stage's normalised map, then a linear layer), not a copy. Pretrained
weights (``pretrained=True``: the official release URLs, or
``pretrained_cfg_overlay=dict(file=PATH)``) go through
:meth:`TimmSMT.load_pretrained`: read by
:func:`smt_mm.checkpoint.read_checkpoint` (weights only, never code) and
loaded strictly after the official key conversion; only the classifier is
left out, when ``num_classes`` differs from the file's (or is 0). With
``features_only=True`` timm's ``FeatureGetterNet`` returns the NCHW maps of
the stages in ``out_indices`` (0-3, strides 4-32), and ``feature_info``
gives their channels and strides.

As timm's own models, the model takes ``device=`` and ``dtype=`` (built
there directly; ``device='meta'`` allocates nothing, and ``to_empty()``
then ``init_weights()`` materialise it) and traces with ``torch.fx``
(``torch.fx.symbolic_trace``, timm's ``features_only=True,
feature_cls='fx'`` and ``create_feature_extractor``); the input-size check
stays in the traced graph. TorchScript (``torch.jit.script``) is not
supported: the input-size check and mmcv's ``ConvModule`` do not script.
"""
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import (adapt_input_conv, build_model_with_cfg,
                         generate_default_cfgs, register_model,
                         resolve_pretrained_cfg)
from torch.nn.modules.batchnorm import _BatchNorm

from smt_mm.checkpoint import load_checked, read_checkpoint
from .backbones import SMT
from .utils import extract_backbone_state_dict
from .utils.ckpt_convert import (convert_official_state_dict,
                                 is_official_state_dict)

__all__ = ['TimmSMT']

RELEASES = 'https://github.com/AFeng-x/SMT/releases/download/v1.0.0/'
STEM = 'stages.0.patch_embed.stem.conv'  # the first convolution


class TimmSMT(SMT):
    """SMT with the official classifier, in timm's model interface.

    Args:
        arch (str | dict): As for :class:`~smt_mm.models.SMT`.
        num_classes (int): Classes of the linear classifier; 0 for none
            (``forward`` then returns the pooled features). Defaults to
            1000.
        in_chans (int): Input channels. Defaults to 3.
        drop_rate (float): Dropout before the classifier. Defaults to 0.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        global_pool (str): ``'avg'`` or ``''`` (no pooling in
            ``forward_head``). Defaults to ``'avg'``.
        device (torch.device | str, optional): Where to create the
            parameters and buffers (timm's direct-device initialisation,
            e.g. ``'cuda'``, or ``'meta'`` for no memory at all). Defaults
            to None (PyTorch's default device).
        dtype (torch.dtype, optional): Floating-point type of the
            parameters and buffers. Defaults to None (PyTorch's default).
        **kwargs: Other :class:`~smt_mm.models.SMT` arguments
            (``frozen_stages``, ``with_cp``...).
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'tiny',
                 num_classes: int = 1000,
                 in_chans: int = 3,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 global_pool: str = 'avg',
                 device: Optional[Union[torch.device, str]] = None,
                 dtype: Optional[torch.dtype] = None,
                 **kwargs):
        if global_pool not in ('avg', ''):
            raise ValueError(f"TimmSMT: global_pool must be 'avg' or '', got "
                             f'{global_pool!r}')
        kwargs.pop('out_indices', None)  # every stage; timm selects
        # factory calls without a device (every layer's) create there
        with torch.device(device) if device is not None else nullcontext():
            super().__init__(
                arch=arch,
                in_channels=in_chans,
                drop_path_rate=drop_path_rate,
                **kwargs)
            self.num_classes = num_classes
            self.in_chans = in_chans
            self.head_hidden_size = self.num_features  # what pre_logits give
            self.global_pool = global_pool
            self.drop_rate = drop_rate
            self.head_drop = nn.Dropout(drop_rate)
            self.head = nn.Linear(self.num_features, num_classes) \
                if num_classes > 0 else nn.Identity()
            self.output_fmt = 'NCHW'
            self.init_weights()  # timm models are initialised when built
        if dtype is not None:
            self.to(dtype=dtype)

    def init_weights(self):
        # BatchNorm as built, statistics included: a model created on the
        # meta device and materialised by to_empty() starts from these
        for m in self.modules():
            if isinstance(m, _BatchNorm):
                m.reset_parameters()
        super().init_weights()
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=.02)
            nn.init.zeros_(self.head.bias)

    # -- timm's classification interface ---------------------------------
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self,
                         num_classes: int,
                         global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        # on the device, in the dtype and in the train/eval mode of the model
        weight = next(self.stages.parameters())
        self.head = nn.Linear(
            self.num_features,
            num_classes,
            device=weight.device,
            dtype=weight.dtype) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's normalised (B, C, H/32, W/32) map."""
        return super().forward(x)[-1]

    def forward_head(self,
                     x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, Sequence[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The stage maps timm's feature extraction asks for.

        Args:
            indices: Stages to return (a list), or the number of last
                stages (an int); None for all.
            norm, stop_early: Accepted for timm's interface; every stage
                map is normalised already.
            output_fmt (str): Only ``'NCHW'``.
            intermediates_only (bool): Return the list only.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"TimmSMT: output_fmt must be 'NCHW', got "
                             f'{output_fmt!r}')
        from timm.models._features import feature_take_indices
        take, _ = feature_take_indices(self.num_stages, indices)
        stages = super().forward(x)
        intermediates = [stages[i] for i in take]
        if intermediates_only:
            return intermediates
        return stages[-1], intermediates

    # -- pretrained weights ----------------------------------------------
    def load_pretrained(self, filename: str) -> None:
        """Load an official release file or a checkpoint of this toolkit
        (a classifier's ``backbone.`` and ``head.fc.`` keys), read safely
        and loaded strictly; timm calls this for ``pretrained=True``.
        With ``in_chans`` other than the file's, the stem's filters are
        adapted as timm adapts its own models' first convolution.

        The classifier is loaded when its shape fits and left as
        initialised (with a log line) when ``num_classes`` differs from the
        file's.
        """
        checkpoint = read_checkpoint(filename)
        state_dict = extract_backbone_state_dict(checkpoint, None, filename)
        stem = state_dict.get(STEM + '.weight')
        if stem is not None and stem.shape[1] != self.in_chans:
            # timm's rule for in_chans != the file's: sum the RGB filters
            # (one channel) or repeat and rescale them
            state_dict = dict(state_dict)
            state_dict[STEM + '.weight'] = adapt_input_conv(
                self.in_chans, stem)
        head = _head_of(checkpoint)
        target = self.state_dict()
        fits = isinstance(self.head, nn.Linear) and head and all(
            f'head.{k}' in target and target[f'head.{k}'].shape == v.shape
            for k, v in head.items())
        if fits:
            state_dict = dict(state_dict)
            state_dict.update((f'head.{k}', v) for k, v in head.items())
        model = self if fits else _Body(self)
        if not fits and isinstance(self.head, nn.Linear):
            print_log(
                f'{filename}: classifier not loaded (the file has '
                f'{_classes(head)} classes, the model {self.num_classes})',
                logger='current')
        load_checked(model, state_dict, filename, strict=True)


class _Body(nn.Module):
    """A view of a :class:`TimmSMT` without its classifier, for strict
    loading of backbone weights."""

    def __init__(self, model: TimmSMT):
        super().__init__()
        self.stages = model.stages


def _head_of(checkpoint) -> Dict[str, torch.Tensor]:
    """The linear classifier of a release file or toolkit classifier."""
    if not isinstance(checkpoint, dict):
        return {}
    state = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    if not isinstance(state, dict):
        return {}
    if is_official_state_dict(state):
        return dict(convert_official_state_dict(state)[1])
    prefix = 'head.fc.'
    return {
        k[len(prefix):]: v
        for k, v in state.items() if k.startswith(prefix)
    }


def _filter_state_dict(state_dict: Dict, model: nn.Module) -> Dict:
    """Official or toolkit key names -> the model's (for sources timm loads
    itself, e.g. a Hugging Face hub copy of a release file)."""
    head = _head_of(state_dict)
    converted = dict(extract_backbone_state_dict(state_dict, None, 'weights'))
    converted.update((f'head.{k}', v) for k, v in head.items())
    return converted


def _classes(head: Dict[str, torch.Tensor]) -> Union[int, str]:
    weight = head.get('weight')
    return weight.shape[0] if weight is not None else 'no'


def _cfg(file: str, **kwargs) -> Dict:
    cfg = dict(
        url=RELEASES + file,
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        crop_pct=0.875,
        interpolation='bicubic',
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv=STEM,
        classifier='head',
        license='mit',
        custom_load=True)  # TimmSMT.load_pretrained: safe, strict
    cfg.update(kwargs)
    return cfg


default_cfgs = generate_default_cfgs({
    'smt_t.in1k':
    _cfg('smt_tiny.pth'),
    'smt_s.in1k':
    _cfg('smt_small.pth'),
    'smt_b.in1k':
    _cfg('smt_base.pth'),
    'smt_l.in22k_ft_in1k':
    _cfg('smt_large_22k_224_ft.pth'),
    'smt_l.in22k_ft_in1k_384':
    _cfg(
        'smt_large_22k_384_ft.pth',
        input_size=(3, 384, 384),
        pool_size=(12, 12),
        crop_pct=1.0),
    'smt_l.in22k':
    _cfg('smt_large_22k.pth', num_classes=21841),
})


def _create(variant: str, preset: str, pretrained: bool,
            **kwargs) -> nn.Module:
    kwargs.setdefault('arch', preset)  # an arch dict may replace it
    # timm resets custom_load when the overlay names another file or URL;
    # ours reads every file SMT-MM knows, so it keeps serving them
    overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
    if overlay.get('file') or overlay.get('url'):
        overlay.setdefault('custom_load', True)
    if pretrained:
        # A URL goes to TimmSMT.load_pretrained as the file: read_checkpoint
        # downloads it (cache keyed by the whole URL, size and stall
        # limits) instead of timm's cache keyed by the file name.
        resolved = resolve_pretrained_cfg(variant,
                                          kwargs.get('pretrained_cfg'),
                                          overlay)
        if resolved.url and not (resolved.file or resolved.state_dict):
            overlay.update(file=resolved.url, url=None, custom_load=True)
    # features_only: timm's FeatureGetterNet over forward_intermediates
    return build_model_with_cfg(
        TimmSMT,
        variant,
        pretrained,
        pretrained_cfg_overlay=overlay or None,
        pretrained_filter_fn=_filter_state_dict,
        feature_cfg=dict(feature_cls='getter', out_indices=(0, 1, 2, 3)),
        **kwargs)


@register_model
def smt_t(pretrained: bool = False, **kwargs) -> TimmSMT:
    """SMT-T (11.5 M parameters with the ImageNet-1k classifier)."""
    return _create('smt_t', 'tiny', pretrained, **kwargs)


@register_model
def smt_s(pretrained: bool = False, **kwargs) -> TimmSMT:
    """SMT-S (20.5 M)."""
    return _create('smt_s', 'small', pretrained, **kwargs)


@register_model
def smt_b(pretrained: bool = False, **kwargs) -> TimmSMT:
    """SMT-B (32.0 M)."""
    return _create('smt_b', 'base', pretrained, **kwargs)


@register_model
def smt_l(pretrained: bool = False, **kwargs) -> TimmSMT:
    """SMT-L (80.6 M); default weights ImageNet-22k then 1k at 224²."""
    return _create('smt_l', 'large', pretrained, **kwargs)
