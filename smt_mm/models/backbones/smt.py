# Copyright (c) SMT-MM contributors. All rights reserved.
"""Scale-Aware Modulation Transformer (SMT) backbone.

Paper: "Scale-Aware Modulation Meet Transformer", ICCV 2023 (arXiv 2307.08579).

The layers follow the paper; the argument checks live in
:mod:`.smt_args`, and the re-laid-out kernels that the layers use for speed
(each the same computation as a plain step here) in :mod:`.smt_kernels`.
"""
import math
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

from ..utils import load_pretrained_backbone
from .smt_args import ZOO_SCHEMES  # noqa: F401 (importable from here)
from .smt_args import check_args as _check_args
from .smt_args import check_divisible, check_input_size, checked_args
from .smt_args import parse_arch as _parse_arch
from .smt_conventions import SMTConventions
from .smt_kernels import (HWShape, depthwise, depthwise_residual,
                          image_as_tokens, linears_as_one, sam_head_convs,
                          sam_modulator, sam_split_heads, tokens_as_image,
                          use_fused_attn)

# A traced graph (torch.fx) records the input check as one call, which runs
# on the real input, instead of testing the shapes of its proxies.
torch.fx.wrap('check_input_size')

# Layer configs of the official model. The norms of the blocks and of the
# stage outputs use eps 1e-6, those after the patch embeddings PyTorch's
# default; BatchNorm in the stem and in SAM's aggregation.
DEFAULT_NORM_CFG = dict(type='BN')
DEFAULT_ACT_CFG = dict(type='GELU')
DEFAULT_TRANSFORMER_NORM_CFG = dict(type='LN', eps=1e-6)
DEFAULT_PATCH_NORM_CFG = dict(type='LN')


class SAM(BaseModule):
    """Scale-Aware Modulation mixer.

    With ``s`` and ``v`` linear projections of the tokens ``x`` (B, N, C):

    1. split heads: ``s(x)`` as ``num_heads`` images of ``C / heads``
       channels;
    2. Multi-Head Mixed Convolution: a depthwise conv of kernel ``3 + 2i``
       on head ``i``;
    3. Scale-Aware Aggregation: ``proj1(act(bn(proj0(.))))`` of the head
       maps interleaved (channel ``c * heads + i`` is channel ``c`` of head
       ``i``), whose grouped 1x1 ``proj0`` mixes one channel of every head:
       the modulator;
    4. modulation: ``proj(v(x) * modulator)``.

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

    Attributes:
        fused (bool): Compute steps 1-3 with the kernels of
            :mod:`.smt_kernels` (:func:`.sam_split_heads`,
            :func:`.sam_head_convs`, :func:`.sam_modulator`: one GEMM for
            all heads, convs written straight into the interleaved map,
            BatchNorm folded into ``proj0`` in eval mode) rather than with
            the plain code of :meth:`split_heads`, :meth:`head_convs` and
            :meth:`modulator`; the results agree. Defaults to True.

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
        check_divisible(embed_dims, num_heads, 'modulation')
        self.fused = True
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

    def split_heads(self, x: torch.Tensor,
                    hw_shape: HWShape) -> List[torch.Tensor]:
        """Step 1: ``s(x)`` of tokens ``x`` (B, N, C) as one
        (B, C / heads, H, W) image per head (head ``i``: channels
        ``i * C / heads`` to ``(i + 1) * C / heads``)."""
        if self.fused:
            return sam_split_heads(self, x, hw_shape)
        s = tokens_as_image(self.s(x), hw_shape)
        width = self.s.out_features // self.num_heads
        return [s.narrow(1, i * width, width) for i in range(self.num_heads)]

    def head_convs(self, heads: List[torch.Tensor],
                   hw_shape: HWShape) -> torch.Tensor:
        """Step 2: head ``i``'s depthwise conv (kernel ``3 + 2i``), stacked
        as (B, C / heads, heads, H, W)."""
        if self.fused:
            return sam_head_convs(self, heads, hw_shape)
        maps = [conv(head) for conv, head in zip(self.local_convs, heads)]
        return torch.stack(maps, dim=2)

    def head_maps(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """Multi-Head Mixed Convolution of tokens ``x`` (B, N, C): steps 1-2.

        Returns:
            Tensor: (B, C / heads, heads, H, W); ``[:, :, i]`` is head ``i``'s
            conv output (kernel ``3 + 2i``), and flattening dims 1-2 gives
            the interleaved map the aggregation reads (channel
            ``c * heads + i`` is channel ``c`` of head ``i``).
        """
        return self.head_convs(self.split_heads(x, hw_shape), hw_shape)

    def modulator(self, mixed: torch.Tensor) -> torch.Tensor:
        """Step 3, Scale-Aware Aggregation of the :meth:`head_maps` output:
        the (B, C, N) modulator that multiplies the value branch."""
        if self.fused:
            return sam_modulator(self, mixed)
        hidden = self.act(self.bn(self.proj0(mixed.flatten(1, 2))))
        return self.proj1(hidden).flatten(2)

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """Steps 1-4 (``v(x)`` first in the product, which then takes its
        token layout, the one ``proj`` needs)."""
        # split heads: s(x) as one image of C / heads channels per head
        heads = self.split_heads(x, hw_shape)
        # multi-scale depthwise convolutions: kernel 3 + 2i on head i
        mixed = self.head_convs(heads, hw_shape)
        # aggregation: 1x1 conv across the heads, norm, activation, 1x1 conv
        modulator = self.modulator(mixed)
        # modulation: value projection times modulator, output projection
        return self.proj(self.v(x) * modulator.transpose(1, 2))


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
        check_divisible(embed_dims, num_heads, 'attention')
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
        qkv = linears_as_one(x, self.q, self.kv)
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
        local = depthwise(self.local_conv,
                          tokens_as_image(v.flatten(2), hw_shape))
        return self.proj(out + image_as_tokens(local))


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
        # h + dwconv(h), as one conv with the identity added to its kernel
        h = depthwise_residual(self.dwconv, tokens_as_image(h, hw_shape))
        return self.fc2(self.act(image_as_tokens(h)))


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
        hw_shape = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw_shape


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
class SMT(SMTConventions, BaseModule):
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
        # the constructor's arguments, in order
        checked = checked_args(
            type(self), arch, in_channels, out_indices, drop_path_rate,
            frozen_stages, norm_eval, with_cp, norm_cfg, act_cfg,
            transformer_norm_cfg, patch_norm_cfg, pretrained, init_cfg)
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
        # on the CPU explicitly, so the model can be built on the meta device
        dpr = torch.linspace(
            0, drop_path_rate, sum(s['depths']), device='cpu').tolist()
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
                    prev_dims,
                    dims,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    norm_cfg=patch_norm_cfg)
            blocks = []
            for j in range(depth):
                # the hybrid stage alternates SAM (even) and MSA (odd) blocks
                msa = i == self.hybrid_stage and j % 2 == 1
                blocks.append(
                    SMTBlock(
                        embed_dims=dims,
                        mlp_ratio=s['mlp_ratios'][i],
                        use_sam=bool(s['ca_attentions'][i]) and not msa,
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

    @classmethod
    def stage_stride(cls, index: int) -> int:
        """Input pixels per token side in stage ``index`` (from 0): 4, 8,
        16, 32."""
        return cls.stem_stride * 2**index

    # -- argument checking (the checks: smt_args) -----------------------
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
        _check_args(cls, kwargs)

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
        return _parse_arch(cls, arch)

    # -- initialisation and forward -------------------------------------
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
            self.is_init = True
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
        self.is_init = True

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the NCHW maps of the stages in ``out_indices``."""
        x = check_input_size(x, self.min_input_size)
        outs: List[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                # The stage map is a channels-last view; mmcv ops such as
                # RoIAlign index raw NCHW memory and silently read garbage
                # from it, so hand downstream modules contiguous NCHW maps.
                outs.append(x.contiguous())
        return tuple(outs)
