# Copyright (c) SMT-MM contributors. All rights reserved.
"""Scale-Aware Modulation Transformer (SMT) backbone.

Paper: "Scale-Aware Modulation Meet Transformer", ICCV 2023 (arXiv 2307.08579).
"""
import difflib
import inspect
import math
import os
from copy import deepcopy
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import (constant_init, normal_init,
                                        trunc_normal_init)
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from smt_mm.checkpoint import check_load_in_hook
from smt_mm.errors import SMTConfigError, SMTConfigTypeError
from ..utils import load_pretrained_backbone

# (H, W) of a stage's token grid
HWShape = Tuple[int, int]
# Layer configs of the official model. The norms of the blocks and of the
# stage outputs use eps 1e-6, those after the patch embeddings PyTorch's
# default; BatchNorm in the stem and in SAM's aggregation.
DEFAULT_NORM_CFG = dict(type='BN')
DEFAULT_ACT_CFG = dict(type='GELU')
DEFAULT_TRANSFORMER_NORM_CFG = dict(type='LN', eps=1e-6)
DEFAULT_PATCH_NORM_CFG = dict(type='LN')


def use_fused_attn() -> bool:
    """Whether MSA blocks use PyTorch's fused attention kernel
    (``F.scaled_dot_product_attention``) by default; ``SMT_FUSED_ATTN=0``
    switches new models to the explicit ``softmax(q k^T) v`` (for export
    tools or debugging). Each block's ``fused_attn`` can be set as well."""
    return os.environ.get('SMT_FUSED_ATTN', '1') != '0'


def _tokens_as_image(x: torch.Tensor, hw_shape: HWShape):
    """View (B, N, C) tokens as a channels-last (B, C, H, W) image (no copy):
    PyTorch's convolutions accept channels-last input and answer in the
    same layout, so tokens never need a transpose copy."""
    return x.unflatten(1, hw_shape).permute(0, 3, 1, 2)


def _depthwise(conv: nn.Conv2d,
               x: torch.Tensor,
               weight: torch.Tensor = None) -> torch.Tensor:
    """``conv`` (a depthwise conv) of a channels-last ``x``.

    Its weight enters through a view: a depthwise conv's weight gradient on
    channels-last input comes back with the strides of a channels-last
    (C, 1, k, k) tensor, which differ from the parameter's in the size-1
    dimension only. DDP's bucket views take the parameter's strides, so it
    would copy every such gradient (and warn "Grad strides do not match
    bucket view strides"); the view's backward returns the gradient with
    the parameter's own strides, without a copy.
    """
    weight = conv.weight if weight is None else weight
    return F.conv2d(x, weight.view(weight.shape), conv.bias, conv.stride,
                    conv.padding, conv.dilation, conv.groups)


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


def _check_divisible(embed_dims: int, num_heads: int, heads: str) -> None:
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


# mmengine's model zoo schemes: their names are weights of other backbones
# (mmseg's base configs set e.g. model.pretrained='open-mmlab://resnet50_v1c')
ZOO_SCHEMES = ('open-mmlab://', 'torchvision://', 'mmcls://')


def _pretrained_init_cfg(pretrained, init_cfg):
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


def _image_as_tokens(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_tokens_as_image` (a view when ``x`` is
    channels-last, a copy otherwise)."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


class SAM(BaseModule):
    """Scale-Aware Modulation mixer.

    Multi-Head Mixed Convolution (one depthwise conv of kernel ``3 + 2i`` per
    head ``i``) followed by Scale-Aware Aggregation (a grouped 1x1 conv that
    mixes one channel of every head), whose output modulates a value branch.

    Args:
        embed_dims (int): Number of channels.
        num_heads (int): Number of modulation heads. Defaults to 4.
        expand_ratio (int): Channel expansion of the aggregation.
            Defaults to 2.
        qkv_bias (bool): Bias in the value and scale projections.
            Defaults to True.
        norm_cfg (dict): Norm after the aggregation (kept under the name
            ``bn`` whatever its type, so state-dict keys do not change).
            Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation of the modulator.
            Defaults to ``dict(type='GELU')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from smt_mm.models.backbones.smt import SAM
        >>> sam = SAM(32, num_heads=4).eval()
        >>> tuple(sam(torch.rand(2, 8 * 8, 32), (8, 8)).shape)
        (2, 64, 32)
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int = 4,
                 expand_ratio: int = 2,
                 qkv_bias: bool = True,
                 norm_cfg: Dict = DEFAULT_NORM_CFG,
                 act_cfg: Dict = DEFAULT_ACT_CFG,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        _check_divisible(embed_dims, num_heads, 'modulation')
        self.num_heads = num_heads
        head_dims = embed_dims // num_heads
        self.v = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.s = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.local_convs = ModuleList([
            nn.Conv2d(
                head_dims,
                head_dims,
                kernel_size=3 + 2 * i,
                padding=1 + i,
                groups=head_dims) for i in range(num_heads)
        ])
        # Groups of ``num_heads`` consecutive channels of the interleaved
        # map hold the same channel of every head.
        self.proj0 = nn.Conv2d(
            embed_dims, embed_dims * expand_ratio, 1, groups=head_dims)
        self.bn = build_norm_layer(norm_cfg, embed_dims * expand_ratio)[1]
        self.act = build_activation_layer(act_cfg)
        self.proj1 = nn.Conv2d(embed_dims * expand_ratio, embed_dims, 1)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def _head_major_s(self, x: torch.Tensor) -> torch.Tensor:
        """The scale projection as (heads, B * N, C / heads), contiguous.

        One batched GEMM with the weight rows grouped by head writes every
        head's channels contiguously, so each head's conv reads a
        channels-last image without first copying a strided slice.
        """
        B, N, C = x.shape
        heads = self.num_heads
        weight = self.s.weight.view(heads, C // heads, C).transpose(1, 2)
        tokens = x.reshape(1, B * N, C).expand(heads, -1, -1)
        if self.s.bias is None:
            return torch.bmm(tokens, weight)
        bias = self.s.bias.view(heads, 1, C // heads)
        return torch.baddbmm(bias, tokens, weight)

    def _aggregate(self, mixed: torch.Tensor) -> torch.Tensor:
        """proj0 and the norm; in eval mode an affine BatchNorm with
        running statistics is folded into proj0's weights (one pass over
        the 2C-channel map instead of two). Other norms, and traced graphs
        (FLOP counting), apply the norm layer itself."""
        bn = self.bn
        if bn.training or not _is_foldable(bn) or torch.jit.is_tracing():
            return bn(self.proj0(mixed))
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = self.proj0.weight * scale[:, None, None, None]
        bias = (self.proj0.bias - bn.running_mean) * scale + bn.bias
        return F.conv2d(mixed, weight, bias, groups=self.proj0.groups)

    def head_maps(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """Multi-Head Mixed Convolution of tokens ``x`` (B, N, C).

        Returns:
            Tensor: (B, C / heads, heads, H, W); ``[:, :, i]`` is head ``i``'s
            conv output (kernel ``3 + 2i``), and flattening dims 1-2 gives
            the interleaved map the aggregation reads (channel
            ``c * heads + i`` is channel ``c`` of head ``i``).
        """
        B, N, C = x.shape
        heads = self.num_heads
        s = self._head_major_s(x)
        mixed = x.new_empty(B, C // heads, heads, *hw_shape)
        for i, conv in enumerate(self.local_convs):
            mixed[:, :, i] = _depthwise(
                conv, _tokens_as_image(s[i].view(B, N, -1), hw_shape))
        return mixed

    def modulator(self, mixed: torch.Tensor) -> torch.Tensor:
        """Scale-Aware Aggregation of the :meth:`head_maps` output: the
        (B, C, N) modulator that multiplies the value branch."""
        hidden = self.act(self._aggregate(mixed.flatten(1, 2)))
        # proj1 as a batched (C, 2C) @ (2C, N) GEMM: NCHW out, read as
        # tokens by forward. bmm (not matmul, which folds the batch through
        # a transpose) hands the activation and the norm an NCHW gradient
        # like their saved inputs; mixed layouts slow their backward.
        weight = self.proj1.weight.flatten(1).expand(hidden.shape[0], -1, -1)
        return torch.baddbmm(self.proj1.bias[:, None], weight,
                             hidden.flatten(2))

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """Head convs on channels-last views; aggregation in NCHW.

        On CPU, depthwise convs are fastest on channels-last input, the
        grouped 1x1 proj0 (4 input channels per group) is faster on
        contiguous NCHW than on channels-last, and a dense GEMM in its
        place costs more than it saves once C >= 128. The heads
        are therefore written straight into the interleaved NCHW buffer
        (the only copy), and the modulator comes back to tokens through
        the GEMM of proj1 rather than a transpose.
        """
        modulator = self.modulator(self.head_maps(x, hw_shape))
        # v first: the product takes v's (token) layout, which proj needs
        return self.proj(self.v(x) * modulator.transpose(1, 2))


def _is_foldable(norm: nn.Module) -> bool:
    """An affine BatchNorm (SyncBN included) with running statistics, which
    eval mode can fold into the preceding conv."""
    return isinstance(norm, _BatchNorm) and norm.affine and \
        norm.running_mean is not None


class MSA(BaseModule):
    """Global multi-head self-attention with a depthwise conv on the values.

    Args:
        embed_dims (int): Number of channels.
        num_heads (int): Number of attention heads.
        qkv_bias (bool): Bias in the query/key/value projections.
            Defaults to True.

    Attributes:
        fused_attn (bool): Compute the attention with PyTorch's fused
            kernel (no N x N map kept for the backward pass) rather than
            explicitly. Defaults to :func:`use_fused_attn`.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        _check_divisible(embed_dims, num_heads, 'attention')
        self.fused_attn = use_fused_attn()
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self.local_conv = nn.Conv2d(
            embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def qkv(self, x: torch.Tensor):
        """Queries, keys and values of tokens ``x`` (B, N, C) from one GEMM:
        (B, heads, N, C / heads) each, and the values as (B, N, heads,
        C / heads) for the value conv."""
        B, N, C = x.shape
        qkv = F.linear(x, torch.cat([self.q.weight, self.kv.weight]),
                       _cat_or_none(self.q.bias, self.kv.bias))
        q, k, v = qkv.view(B, N, 3, self.num_heads, -1).unbind(2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), v

    def attention(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The explicit attention map ``softmax(q k^T / sqrt(d))`` (the
        unfused path, and what the visualisation draws)."""
        return ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """One q/k/v GEMM, the attention, and the value conv on a
        channels-last view."""
        B, N, C = x.shape
        q, k, v_heads, v = self.qkv(x)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v_heads)
        else:
            out = self.attention(q, k) @ v_heads
        # SDPA's CPU/GPU kernels lay the output out as (B, N, heads, d), so
        # this transpose + reshape is a view there (a copy otherwise).
        out = out.transpose(1, 2).reshape(B, N, C)
        local = _depthwise(self.local_conv,
                           _tokens_as_image(v.flatten(2), hw_shape))
        return self.proj(out + _image_as_tokens(local))


def _cat_or_none(*biases):
    return None if biases[0] is None else torch.cat(biases)


class DWConvFFN(BaseModule):
    """Feed-forward network with a depthwise 3x3 conv before the activation.

    Computes ``fc2(act(h + dwconv(h)))`` with ``h = fc1(x)``.

    Args:
        embed_dims (int): Input/output channels.
        feedforward_channels (int): Hidden channels.
        act_cfg (dict): The activation. Defaults to ``dict(type='GELU')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from smt_mm.models.backbones.smt import DWConvFFN
        >>> ffn = DWConvFFN(16, 64)
        >>> tuple(ffn(torch.rand(2, 4 * 6, 16), (4, 6)).shape)
        (2, 24, 16)
    """

    def __init__(self,
                 embed_dims: int,
                 feedforward_channels: int,
                 act_cfg: Dict = DEFAULT_ACT_CFG,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Linear(embed_dims, feedforward_channels)
        self.dwconv = nn.Conv2d(
            feedforward_channels,
            feedforward_channels,
            3,
            padding=1,
            groups=feedforward_channels)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(feedforward_channels, embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: HWShape):
        h = self.fc1(x)
        # h + dwconv(h) is a depthwise conv whose centre tap is one larger:
        # adding the identity to the kernel saves a full-size add and its
        # saved activations.
        weight = self.dwconv.weight
        centre = weight.shape[-1] // 2
        identity = torch.zeros_like(weight)
        identity[..., centre, centre] = 1
        h = _image_as_tokens(
            _depthwise(self.dwconv, _tokens_as_image(h, hw_shape),
                       weight + identity))
        return self.fc2(self.act(h))


class SMTBlock(BaseModule):
    """One SMT block: a token mixer (SAM or MSA) and a DWConv FFN, each a
    pre-norm residual branch with optional layer scale and stochastic depth.

    Args:
        embed_dims (int): Number of channels.
        mlp_ratio (float): Hidden/input channel ratio of the FFN.
        use_sam (bool): Mix tokens with SAM if True, else with MSA.
        ca_num_heads (int): Modulation heads (SAM).
        sa_num_heads (int): Attention heads (MSA).
        expand_ratio (int): Expansion of SAM's aggregation.
        qkv_bias (bool): Bias in the mixers' input projections.
        drop_path_rate (float): Stochastic depth rate of this block.
        layer_scale_init_value (float): Initial layer scale; 0 disables it.
        with_cp (bool): Recompute this block in the backward pass to save
            memory.
        norm_cfg (dict): Norm of SAM's aggregation.
            Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation of SAM and of the FFN.
            Defaults to ``dict(type='GELU')``.
        transformer_norm_cfg (dict): The two pre-norms (over the channels
            of the tokens). Defaults to ``dict(type='LN', eps=1e-6)``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from smt_mm.models.backbones.smt import SMTBlock
        >>> block = SMTBlock(32, mlp_ratio=2, use_sam=False, ca_num_heads=-1,
        ...                  sa_num_heads=4)
        >>> tuple(block(torch.rand(1, 4 * 4, 32), (4, 4)).shape)
        (1, 16, 32)
    """

    def __init__(self,
                 embed_dims,
                 mlp_ratio,
                 use_sam,
                 ca_num_heads,
                 sa_num_heads,
                 expand_ratio=2,
                 qkv_bias=True,
                 drop_path_rate=0.,
                 layer_scale_init_value=0.,
                 with_cp=False,
                 norm_cfg: Dict = DEFAULT_NORM_CFG,
                 act_cfg: Dict = DEFAULT_ACT_CFG,
                 transformer_norm_cfg: Dict = DEFAULT_TRANSFORMER_NORM_CFG,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(transformer_norm_cfg, embed_dims)[1]
        if use_sam:
            self.attn = SAM(embed_dims, ca_num_heads, expand_ratio, qkv_bias,
                            norm_cfg, act_cfg)
        else:
            self.attn = MSA(embed_dims, sa_num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = build_norm_layer(transformer_norm_cfg, embed_dims)[1]
        self.ffn = DWConvFFN(embed_dims, int(embed_dims * mlp_ratio), act_cfg)
        if layer_scale_init_value > 0:
            self.gamma1 = nn.Parameter(
                torch.full((embed_dims, ), float(layer_scale_init_value)))
            self.gamma2 = nn.Parameter(
                torch.full((embed_dims, ), float(layer_scale_init_value)))
        else:
            self.gamma1 = self.gamma2 = None

    @staticmethod
    def _scale(x, gamma):
        return x if gamma is None else x * gamma

    def _forward(self, x, hw_shape):
        x = x + self.drop_path(
            self._scale(self.attn(self.norm1(x), hw_shape), self.gamma1))
        x = x + self.drop_path(
            self._scale(self.ffn(self.norm2(x), hw_shape), self.gamma2))
        return x

    def forward(self, x, hw_shape):
        if self.with_cp and self.training and x.requires_grad:
            return cp.checkpoint(
                self._forward, x, hw_shape, use_reentrant=False)
        return self._forward(x, hw_shape)


class StemEmbed(BaseModule):
    """Stage-1 patch embedding: conv(stride 2) - norm - ReLU - conv(k2, s2) -
    norm, giving tokens at stride 4.

    Args:
        in_channels (int): Input image channels.
        embed_dims (int): Output channels.
        kernel_size (int): Kernel of the first conv (the arch's
            ``head_conv``).
        norm_cfg (dict): Norm after the first conv.
            Defaults to ``dict(type='BN')``.
        patch_norm_cfg (dict): Norm of the output tokens.
            Defaults to ``dict(type='LN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from smt_mm.models.backbones.smt import StemEmbed
        >>> tokens, hw_shape = StemEmbed(3, 16, 3)(torch.rand(1, 3, 32, 48))
        >>> tuple(tokens.shape), hw_shape
        ((1, 96, 16), (8, 12))
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 kernel_size: int,
                 norm_cfg: Dict = DEFAULT_NORM_CFG,
                 patch_norm_cfg: Dict = DEFAULT_PATCH_NORM_CFG,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.stem = ConvModule(
            in_channels,
            embed_dims,
            kernel_size,
            stride=2,
            padding=kernel_size // 2,
            bias=False,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))
        self.projection = nn.Conv2d(embed_dims, embed_dims, 2, stride=2)
        self.norm = build_norm_layer(patch_norm_cfg, embed_dims)[1]

    def forward(self, x):
        # Channels-last through the stem: its convs, norm and ReLU run
        # faster so on CPU, and the tokens below are then a view rather
        # than a transposed copy for the token norm.
        x = self.projection(
            self.stem(x.contiguous(memory_format=torch.channels_last)))
        hw_shape = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(hw_shape)


class SMTStage(BaseModule):
    """Patch embedding, blocks and output norm of one stage.

    Args:
        patch_embed (nn.Module): Maps the input (image or previous stage
            map, NCHW) to tokens and their ``(H, W)``.
        blocks (list[SMTBlock]): The stage's blocks.
        embed_dims (int): Channels of the stage.
        transformer_norm_cfg (dict): The output norm.
            Defaults to ``dict(type='LN', eps=1e-6)``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from smt_mm.models.backbones.smt import SMTStage, StemEmbed
        >>> stage = SMTStage(StemEmbed(3, 16, 3), [], 16)
        >>> tuple(stage(torch.rand(1, 3, 32, 32)).shape)
        (1, 16, 8, 8)
    """

    def __init__(self,
                 patch_embed: nn.Module,
                 blocks: Sequence[nn.Module],
                 embed_dims: int,
                 transformer_norm_cfg: Dict = DEFAULT_TRANSFORMER_NORM_CFG,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.patch_embed = patch_embed
        self.blocks = ModuleList(blocks)
        self.norm = build_norm_layer(transformer_norm_cfg, embed_dims)[1]

    def forward(self, x):
        x, hw_shape = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, hw_shape)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, *hw_shape)


# Settings every official preset shares: per-stage head counts (-1 where a
# stage has no blocks of that kind) and which stages modulate (1) or attend
# (0); stage 3 alternates both (``SMT.hybrid_stage``).
_SHARED_ARCH = dict(
    ca_num_heads=[4, 4, 4, -1],
    sa_num_heads=[-1, -1, 8, 16],
    ca_attentions=[1, 1, 1, 0],
    expand_ratio=2,
    qkv_bias=True,
    layerscale_value=1e-4)


@MODELS.register_module()
class SMT(BaseModule):
    """Scale-Aware Modulation Transformer.

    A PyTorch implementation of `Scale-Aware Modulation Meet Transformer
    <https://arxiv.org/abs/2307.08579>`_ for classification, detection and
    segmentation. Stages 1-2 mix tokens with Scale-Aware Modulation (SAM),
    stage 3 alternates SAM (even blocks) and global self-attention (odd
    blocks), stage 4 uses self-attention only.

    Args:
        arch (str | dict): SMT architecture. A preset name among
            ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (or ``'t'``,
            ``'s'``, ``'b'``, ``'l'``), or a dict with the constructor names
            of the official code: ``embed_dims``, ``depths``, ``mlp_ratios``,
            ``ca_num_heads``, ``sa_num_heads``, ``ca_attentions``,
            ``head_conv``, ``expand_ratio`` and ``qkv_bias`` (required, as
            every official preset names them), ``use_layerscale`` and
            ``layerscale_value`` (optional: False and 1e-4, the official
            defaults). Defaults to ``'tiny'``.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int] | int): Stages whose (normalised) maps are
            returned; negative indices count from the end.
            Defaults to ``(0, 1, 2, 3)``.
        drop_path_rate (float): Stochastic depth rate, rising linearly from 0
            over all blocks. Defaults to 0.
        frozen_stages (int): What to freeze (no gradients, eval mode), as in
            mmdet's Swin: -1 nothing, 0 the stem (stage 1's patch
            embedding), ``i`` the stem and stages 1 to ``i`` (their patch
            embeddings, blocks and output norms). Defaults to -1.
            (mmpretrain's Swin counts differently: its 0 freezes stage 1.)
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
            Defaults to False.
        with_cp (bool): Use activation checkpointing in every block to save
            memory at the cost of recomputation. Defaults to False.
        norm_cfg (dict): The norm layers on images: after the stem's first
            conv and in SAM's aggregation (e.g. ``dict(type='SyncBN')`` or
            ``dict(type='GN', num_groups=32)``). Defaults to
            ``dict(type='BN')``.
        act_cfg (dict): The activation of SAM's modulator and of the FFNs
            (the stem keeps its ReLU). Defaults to ``dict(type='GELU')``.
        transformer_norm_cfg (dict): The norms on tokens in the blocks and
            at the stage outputs. Defaults to ``dict(type='LN', eps=1e-6)``.
        patch_norm_cfg (dict): The norms after the patch embeddings.
            Defaults to ``dict(type='LN')`` (PyTorch's eps, as the official
            model).
        pretrained (str, optional): A checkpoint path or URL, the same as
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``; for
            mmseg, whose segmentors copy the config's ``model.pretrained``
            into the backbone. It cannot be combined with ``init_cfg`` and
            cannot name mmengine's model zoo (``open-mmlab://``,
            ``torchvision://``, ``mmcls://``), which has no SMT weights.
            Defaults to None.
        init_cfg (dict, optional): Initialisation config. With
            ``dict(type='Pretrained', checkpoint=PATH)`` the backbone loads
            an official release file (state dict under ``model``) or a
            checkpoint of this toolkit (``backbone.`` keys) strictly: only a
            classification head may be left out. Defaults to None (the
            initialisation of the official code).

    Attributes:
        num_features (int): Channels of the last stage (what a
            classification head on the last stage receives).
        feature_info (list[dict]): One dict per returned map, in the order
            of the outputs (stage order), as timm's ``feature_info``:
            ``num_chs`` (channels), ``reduction`` (the stage's stride with
            respect to the input) and ``module`` (the stage's module name).

    Bad settings (wrong types, non-positive sizes, out-of-range indices or
    rates, layer configs that do not build) raise
    :class:`~smt_mm.errors.SMTConfigError` or
    :class:`~smt_mm.errors.SMTConfigTypeError` naming the setting and what
    would be valid; :meth:`check_args` runs the same checks on a config's
    keyword arguments without building the model.

    For layer-wise learning rate decay (mmpretrain's
    ``LearningRateDecayOptimWrapperConstructor``), :meth:`get_layer_depth`
    gives every parameter its depth: the stem first, then each block in
    order.

    The state dict records its layout version (``_version``); loading one
    of an older layout renames its keys first (:meth:`upgrade_state_dict`).

    Examples:
        >>> import torch
        >>> from smt_mm.models import SMT
        >>> model = SMT(arch='tiny', out_indices=(0, 1, 2, 3))
        >>> outs = model(torch.rand(1, 3, 224, 224))
        >>> for out in outs:
        ...     print(tuple(out.shape))
        (1, 64, 56, 56)
        (1, 128, 28, 28)
        (1, 256, 14, 14)
        (1, 512, 7, 7)
        >>> model.num_features
        512
        >>> for info in SMT(arch='tiny', out_indices=(1, 3)).feature_info:
        ...     print(info)
        {'num_chs': 128, 'reduction': 8, 'module': 'stages.1'}
        {'num_chs': 512, 'reduction': 32, 'module': 'stages.3'}
        >>> model.get_layer_depth('backbone.stages.0.blocks.1.norm1.weight',
        ...                       prefix='backbone.')
        (2, 15)
        >>> # a detector with SyncBN, frozen stem and stage 1
        >>> model = SMT('small', frozen_stages=1, norm_cfg=dict(type='SyncBN'))
    """
    # yapf: disable
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(
            embed_dims=[64, 128, 256, 512], depths=[2, 2, 8, 1],
            mlp_ratios=[4, 4, 4, 2], head_conv=3, use_layerscale=False,
            **_SHARED_ARCH)),
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=[64, 128, 256, 512], depths=[3, 4, 18, 2],
            mlp_ratios=[4, 4, 4, 2], head_conv=3, use_layerscale=False,
            **_SHARED_ARCH)),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=[64, 128, 256, 512], depths=[4, 6, 28, 2],
            mlp_ratios=[8, 6, 4, 2], head_conv=7, use_layerscale=False,
            **_SHARED_ARCH)),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=[96, 192, 384, 768], depths=[4, 6, 28, 4],
            mlp_ratios=[8, 6, 4, 2], head_conv=7, use_layerscale=True,
            **_SHARED_ARCH)),
    }
    # yapf: enable
    # Keys an arch dict must hold (those every official preset names) and
    # those it may leave out, with the official constructor's defaults.
    required_arch_keys = ('embed_dims', 'depths', 'mlp_ratios', 'ca_num_heads',
                          'sa_num_heads', 'ca_attentions', 'head_conv',
                          'expand_ratio', 'qkv_bias')
    optional_arch_keys = dict(use_layerscale=False, layerscale_value=1e-4)
    per_stage_keys = ('embed_dims', 'depths', 'mlp_ratios', 'ca_num_heads',
                      'sa_num_heads', 'ca_attentions')
    # The stage whose blocks alternate SAM and MSA in the official model.
    hybrid_stage = 2
    # Smallest input side: the total stride, so that the last stage's map
    # still covers a whole stride-32 cell (the architecture's stated input
    # range; smaller inputs only run on padding).
    min_input_size = 32
    # Stride of stage 1's tokens; every later stage halves the resolution.
    stem_stride = 4
    # Layout of the state dict, which ``state_dict()`` records in its
    # metadata. A rename of parameters bumps it and adds to
    # ``state_dict_upgrades`` the step from the previous layout: a function
    # ``step(state_dict, prefix)`` renaming the keys under ``prefix`` in
    # place. Loading an older state dict runs the steps it needs.
    _version = 1
    state_dict_upgrades: Dict[int, Callable[[Dict, str], None]] = {}

    def __init__(self,
                 arch: Union[str, Dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: Dict = DEFAULT_NORM_CFG,
                 act_cfg: Dict = DEFAULT_ACT_CFG,
                 transformer_norm_cfg: Dict = DEFAULT_TRANSFORMER_NORM_CFG,
                 patch_norm_cfg: Dict = DEFAULT_PATCH_NORM_CFG,
                 pretrained: Optional[str] = None,
                 init_cfg=None):
        checked = self._checked_args(
            arch=arch,
            in_channels=in_channels,
            out_indices=out_indices,
            drop_path_rate=drop_path_rate,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            with_cp=with_cp,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            transformer_norm_cfg=transformer_norm_cfg,
            patch_norm_cfg=patch_norm_cfg,
            pretrained=pretrained,
            init_cfg=init_cfg)
        super().__init__(init_cfg=checked['init_cfg'])
        s = checked['arch']
        self.arch_settings = s
        self.out_indices = checked['out_indices']
        self.frozen_stages = frozen_stages
        self.pretrained = pretrained
        self.num_stages = len(s['depths'])
        self.depths = list(s['depths'])
        self.embed_dims = list(s['embed_dims'])
        self.norm_eval = norm_eval
        self.num_features = self.embed_dims[-1]
        self.feature_info = [
            dict(
                num_chs=self.embed_dims[i],
                reduction=self.stage_stride(i),
                module=f'stages.{i}') for i in sorted(self.out_indices)
        ]

        total_depth = sum(s['depths'])
        # on the CPU explicitly, so the model can be built on the meta device
        dpr = torch.linspace(
            0, drop_path_rate, total_depth, device='cpu').tolist()
        layer_scale = s['layerscale_value'] if s['use_layerscale'] else 0.
        self.stages = ModuleList()
        prev_dims = in_channels
        for i, depth in enumerate(s['depths']):
            dims = s['embed_dims'][i]
            if i == 0:
                patch_embed = StemEmbed(prev_dims, dims, s['head_conv'],
                                        norm_cfg, patch_norm_cfg)
            else:
                patch_embed = PatchEmbed(
                    in_channels=prev_dims,
                    embed_dims=dims,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    norm_cfg=patch_norm_cfg)
            blocks = []
            for j in range(depth):
                use_sam = bool(s['ca_attentions'][i])
                if i == self.hybrid_stage and j % 2 == 1:
                    use_sam = False
                blocks.append(
                    SMTBlock(
                        embed_dims=dims,
                        mlp_ratio=s['mlp_ratios'][i],
                        use_sam=use_sam,
                        ca_num_heads=s['ca_num_heads'][i],
                        sa_num_heads=s['sa_num_heads'][i],
                        expand_ratio=s['expand_ratio'],
                        qkv_bias=s['qkv_bias'],
                        drop_path_rate=dpr[sum(s['depths'][:i]) + j],
                        layer_scale_init_value=layer_scale,
                        with_cp=with_cp,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg,
                        transformer_norm_cfg=transformer_norm_cfg))
            self.stages.append(
                SMTStage(patch_embed, blocks, dims, transformer_norm_cfg))
            prev_dims = dims
        self._freeze_stages()

    # ------------------------------------------------------------------
    # Argument checking
    # ------------------------------------------------------------------
    @classmethod
    def check_args(cls, **kwargs) -> None:
        """Check keyword arguments for :class:`SMT` without building it.

        Runs the constructor's checks (the contents of ``init_cfg`` aside),
        so a config can be checked before a runner builds anything.

        Args:
            **kwargs: Keyword arguments of :class:`SMT`.

        Raises:
            SMTConfigTypeError: An unknown argument (the message suggests
                the closest valid name) or a value of the wrong type.
            SMTConfigError: A value out of its valid range.

        Examples:
            >>> from smt_mm.models import SMT
            >>> SMT.check_args(arch='small', pretrained='smt_small.pth')
            >>> SMT.check_args(frozen_stages=7)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            smt_mm.errors.SMTConfigError: SMT: frozen_stages=7 is out of...
        """
        params = inspect.signature(cls.__init__).parameters
        names = [name for name in params if name != 'self']
        for key in kwargs:
            if key not in names:
                raise SMTConfigTypeError(
                    f'SMT: unknown argument {key!r}{_did_you_mean(key, names)}'
                    f'; valid arguments are {", ".join(names)}')
        args = {name: params[name].default for name in names}
        args.update(kwargs)
        cls._checked_args(**args)

    @classmethod
    def _checked_args(cls, arch, in_channels, out_indices, drop_path_rate,
                      frozen_stages, norm_eval, with_cp, norm_cfg, act_cfg,
                      transformer_norm_cfg, patch_norm_cfg, pretrained,
                      init_cfg) -> Dict:
        """Check the constructor's arguments; return the full arch settings
        (``arch``), the non-negative ``out_indices`` and the ``init_cfg``
        that ``pretrained`` stands for."""
        settings = cls.parse_arch(arch)
        num_stages = len(settings['depths'])
        _check_positive('in_channels', in_channels)
        out_indices = cls._check_out_indices(out_indices, num_stages)
        if not _is_number(drop_path_rate):
            raise SMTConfigTypeError(
                'SMT: drop_path_rate must be a number in [0, 1), got '
                f'{_describe(drop_path_rate)}')
        if not 0 <= drop_path_rate < 1:
            raise SMTConfigError(
                f'SMT: drop_path_rate={drop_path_rate} is out of range; '
                'valid values are in [0, 1) (1 would drop every block)')
        cls._check_frozen_stages(frozen_stages, num_stages)
        _check_bool('norm_eval', norm_eval)
        _check_bool('with_cp', with_cp)
        cls._check_layer_cfgs(
            settings,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            transformer_norm_cfg=transformer_norm_cfg,
            patch_norm_cfg=patch_norm_cfg)
        init_cfg = _pretrained_init_cfg(pretrained, init_cfg)
        return dict(arch=settings, out_indices=out_indices, init_cfg=init_cfg)

    @classmethod
    def parse_arch(cls, arch: Union[str, Dict]) -> Dict:
        """Turn ``arch`` (a preset name or a dict) into full, checked
        settings.

        Args:
            arch (str | dict): A name of :attr:`arch_zoo`, or a dict with
                every key of :attr:`required_arch_keys` and any of
                :attr:`optional_arch_keys`.

        Returns:
            dict: A copy with all keys, the optional ones filled in.

        Examples:
            >>> from smt_mm.models import SMT
            >>> SMT.parse_arch('b')['depths']
            [4, 6, 28, 2]
            >>> custom = dict(SMT.arch_zoo['tiny'], depths=[1, 1, 2, 1])
            >>> SMT.parse_arch(custom)['depths']
            [1, 1, 2, 1]
        """
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise SMTConfigError(
                    f'SMT: unknown arch {arch!r}'
                    f'{_did_you_mean(key, cls.arch_zoo)}; valid names are '
                    f'{sorted(cls.arch_zoo)} or a dict of settings')
            return deepcopy(cls.arch_zoo[key])
        if not isinstance(arch, dict):
            raise SMTConfigTypeError(
                'SMT: arch must be a preset name (str) or a dict of '
                f'settings, got {_describe(arch)}')
        valid = sorted([*cls.required_arch_keys, *cls.optional_arch_keys])
        unknown = sorted(set(arch) - set(valid), key=str)
        if unknown:
            raise SMTConfigError(
                f'SMT: unknown arch key(s) {unknown}'
                f'{_did_you_mean(str(unknown[0]), valid)}; valid keys are '
                f'{valid}')
        missing = [k for k in cls.required_arch_keys if k not in arch]
        if missing:
            tiny = ', '.join(f'{k}={cls.arch_zoo["tiny"][k]!r}'
                             for k in missing)
            raise SMTConfigError(
                f'SMT: arch dict is missing key(s) {missing}; a dict names '
                f'all of {list(cls.required_arch_keys)} (use_layerscale and '
                'layerscale_value are optional), or use a preset name; the '
                f'tiny preset has {tiny}')
        settings = deepcopy(cls.optional_arch_keys)
        settings.update(deepcopy(dict(arch)))
        cls._check_stage_lists(settings)
        for i in range(len(settings['depths'])):
            cls._check_stage(settings, i)
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

    @classmethod
    def _check_layer_cfgs(cls, settings: Dict, **cfgs: Dict) -> None:
        """Each layer config builds its layers: the norms at every width
        they are used at, the activation once."""
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

    @classmethod
    def _check_stage_lists(cls, settings: Dict) -> None:
        """Per-stage settings are lists (not strings) of one length."""
        for key in cls.per_stage_keys:
            if not isinstance(settings[key], (list, tuple)):
                raise SMTConfigTypeError(
                    f'SMT: arch[{key!r}] must be a list with one entry per '
                    f'stage, got {_describe(settings[key])}')
        lengths = {k: len(settings[k]) for k in cls.per_stage_keys}
        if len(set(lengths.values())) != 1:
            raise SMTConfigError('SMT: per-stage arch settings must have '
                                 f'one entry per stage, got lengths '
                                 f'{lengths}')
        if not lengths['depths']:
            raise SMTConfigError('SMT: arch has no stage; per-stage '
                                 'settings need at least one entry')

    @classmethod
    def _check_stage(cls, settings: Dict, i: int) -> None:
        """Sizes of stage ``i``, and the head counts its blocks use (the
        others are placeholders, -1 in the presets)."""
        for key in ('embed_dims', 'depths'):
            _check_positive(f'arch[{key!r}][{i}]', settings[key][i])
        _check_positive(
            f"arch['mlp_ratios'][{i}]",
            settings['mlp_ratios'][i],
            integer=False)
        use_sam = settings['ca_attentions'][i]
        if not (isinstance(use_sam, int) and use_sam in (0, 1)):
            raise SMTConfigTypeError(
                f"SMT: arch['ca_attentions'][{i}] must be 1 (SAM blocks) or "
                f'0 (self-attention blocks), got {_describe(use_sam)}')
        hybrid = i == cls.hybrid_stage and settings['depths'][i] > 1
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

    @staticmethod
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

    def _check_input_size(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise SMTConfigError(f'SMT: expected a 4-D (N, C, H, W) input, '
                                 f'got shape {tuple(x.shape)}')
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            raise SMTConfigError(
                f'SMT: input {height}x{width} (HxW) is smaller than the '
                f'minimum {self.min_input_size}x{self.min_input_size}; '
                'resize or pad the images to at least that size')

    @staticmethod
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

    # ------------------------------------------------------------------
    # Fine-tuning
    # ------------------------------------------------------------------
    @classmethod
    def stage_stride(cls, index: int) -> int:
        """Input pixels per token side in stage ``index`` (from 0): 4, 8,
        16, 32."""
        return cls.stem_stride * 2**index

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

    # ------------------------------------------------------------------
    # State-dict layout versions
    # ------------------------------------------------------------------
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

    # ------------------------------------------------------------------
    # Initialisation and training mode
    # ------------------------------------------------------------------
    def init_weights(self):
        """Load a pretrained checkpoint strictly, or initialise as the
        official code does (truncated normal linears, fan-out
        normal convs counting groups, unit norms)."""
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_pretrained_backbone(
                self,
                cfg['checkpoint'],
                prefix=cfg.get('prefix'),
                map_location=cfg.get('map_location', 'cpu'),
                strict=cfg.get('strict', True))
            self._is_init = True
            return
        if cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1., bias=0.)
            elif isinstance(m, nn.Conv2d):
                fan_out = (
                    m.kernel_size[0] * m.kernel_size[1] * m.out_channels //
                    m.groups)
                normal_init(m, mean=0., std=math.sqrt(2. / fan_out), bias=0.)
        self._is_init = True

    def _freeze_stages(self):
        """Freeze as ``frozen_stages`` says (see the class docstring)."""
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

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the NCHW maps of the stages in ``out_indices``."""
        self._check_input_size(x)
        outs: List[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                # The stage map is a channels-last view; mmcv ops such as
                # RoIAlign index raw NCHW memory and silently read garbage
                # from it, so hand downstream modules contiguous NCHW maps.
                outs.append(x.contiguous())
        return tuple(outs)
