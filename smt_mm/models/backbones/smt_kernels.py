# Copyright (c) SMT-MM contributors. All rights reserved.
"""Fast kernels of SMT's layers: the computations of
:mod:`~smt_mm.models.backbones.smt`, re-laid out for speed.

Each function computes what a step of a layer computes as written in the
paper (the layer's plain code), with the same parameters; they differ in
memory layout and in how work is grouped, not in the result (the parity
tests hold both, and an independent reference, to the same outputs and
gradients). ``SAM.fused`` switches SAM between its plain steps and the
``sam_*`` functions here; ``MSA.fused_attn`` switches between PyTorch's
fused attention and the explicit ``softmax(q k^T) v``.

Layout: tokens are (B, N, C) and a channels-last (B, C, H, W) image is a
view of them (:func:`tokens_as_image`). On CPU, depthwise convs are fastest
on channels-last input, the grouped 1x1 conv of SAM's aggregation (4 input
channels per group) is faster on contiguous NCHW than on channels-last, and
a dense GEMM in its place costs more than it saves once C >= 128. So SAM's
heads are written straight into the interleaved NCHW map (the only copy),
and the modulator comes back to tokens through the GEMM of ``proj1`` rather
than a transpose.
"""
import os
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

# (H, W) of a stage's token grid
HWShape = Tuple[int, int]


def use_fused_attn() -> bool:
    """Whether MSA blocks use PyTorch's fused attention kernel
    (``F.scaled_dot_product_attention``) by default; ``SMT_FUSED_ATTN=0``
    switches new models to the explicit ``softmax(q k^T) v`` (for export
    tools or debugging). Each block's ``fused_attn`` can be set as well."""
    return os.environ.get('SMT_FUSED_ATTN', '1') != '0'


def linears_as_one(x: torch.Tensor, *linears: nn.Linear) -> torch.Tensor:
    """The outputs of ``linears`` (all with or all without bias) on the
    same input ``x``, concatenated along the channels, from one GEMM."""
    weight = torch.cat([linear.weight for linear in linears])
    bias = None if linears[0].bias is None else torch.cat(
        [linear.bias for linear in linears])
    return F.linear(x, weight, bias)


def tokens_as_image(x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
    """View (B, N, C) tokens as a channels-last (B, C, H, W) image (no copy):
    PyTorch's convolutions accept channels-last input and answer in the
    same layout, so tokens never need a transpose copy."""
    return x.unflatten(1, hw_shape).permute(0, 3, 1, 2)


def image_as_tokens(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`tokens_as_image` (a view when ``x`` is
    channels-last, a copy otherwise)."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def depthwise(conv: nn.Conv2d,
              x: torch.Tensor,
              weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``conv`` (a depthwise conv) of a channels-last ``x``, with ``weight``
    in place of ``conv.weight`` if given.

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


def depthwise_residual(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``x + conv(x)`` for a depthwise ``conv`` with odd kernel and 'same'
    padding, as one conv whose centre tap is one larger: adding the
    identity to the kernel saves a full-size add and its saved
    activations."""
    return depthwise(conv, x, _plus_identity(conv.weight))


def _plus_identity(weight: torch.Tensor) -> torch.Tensor:
    """A depthwise kernel (C, 1, k, k) with one added at its centre tap. A
    torch.fx trace records it as one call (``torch.fx.wrap``: proxies take
    no item assignment, and dead-code elimination would drop an in-place
    write whose result no node reads); ONNX export traces it as written,
    with static shapes."""
    centre = weight.shape[-1] // 2
    identity = torch.zeros_like(weight)
    identity[..., centre, centre] = 1
    return weight + identity


torch.fx.wrap('_plus_identity')


def sam_split_heads(sam: nn.Module, x: torch.Tensor,
                    hw_shape: HWShape) -> List[torch.Tensor]:
    """SAM step 1, ``s(x)`` of tokens ``x`` as one (B, C / heads, H, W)
    channels-last image per head, from one batched GEMM.

    The GEMM's weight rows are grouped by head, so it writes every head's
    channels contiguously, (heads, B * N, C / heads): each head's conv
    reads a channels-last view without first copying a strided slice.
    """
    B, N, C = x.shape
    heads = sam.num_heads
    weight = sam.s.weight.view(heads, C // heads, C).transpose(1, 2)
    tokens = x.reshape(1, B * N, C).expand(heads, -1, -1)
    if sam.s.bias is None:
        s = torch.bmm(tokens, weight)
    else:
        bias = sam.s.bias.view(heads, 1, C // heads)
        s = torch.baddbmm(bias, tokens, weight)
    return [
        tokens_as_image(s[i].view(B, N, -1), hw_shape) for i in range(heads)
    ]


def sam_head_convs(sam: nn.Module, heads: List[torch.Tensor],
                   hw_shape: HWShape) -> torch.Tensor:
    """SAM step 2, each head's depthwise conv written straight into its
    slot of the interleaved (B, C / heads, heads, H, W) NCHW map that the
    aggregation reads (no stack, no layout copy).

    A traced graph (ONNX export) stacks the conv outputs instead: the
    TorchScript-based exporter records the buffer's shape, read from the
    head views, as the example's constants, so another batch size or
    input size would fail or mix up rows.
    """
    convs = list(zip(sam.local_convs, heads))
    if torch.jit.is_tracing():
        return torch.stack([depthwise(c, h) for c, h in convs], dim=2)
    B, width = heads[0].shape[:2]
    mixed = heads[0].new_empty(B, width, len(heads), *hw_shape)
    for i, (conv, head) in enumerate(convs):
        mixed = _write_head(mixed, i, depthwise(conv, head))
    return mixed


def _write_head(mixed: torch.Tensor, i: int,
                head: torch.Tensor) -> torch.Tensor:
    """``mixed[:, :, i] = head``, returning ``mixed``. A torch.fx trace
    records it as one call (``torch.fx.wrap``: proxies take no item
    assignment) whose result the next step reads, so that dead-code
    elimination (timm's and torchvision's feature extractors) keeps it."""
    mixed[:, :, i] = head
    return mixed


torch.fx.wrap('_write_head')


def is_foldable(norm: nn.Module) -> bool:
    """An affine BatchNorm (SyncBN included) with running statistics, which
    eval mode can fold into the preceding conv."""
    return isinstance(norm, _BatchNorm) and norm.affine and \
        norm.running_mean is not None


def _proj0_norm(sam: nn.Module, mixed: torch.Tensor) -> torch.Tensor:
    """``bn(proj0(mixed))``; in eval mode an affine BatchNorm with running
    statistics is folded into proj0's weights (one pass over the
    2C-channel map instead of two). Other norms, and traced graphs (FLOP
    counting), apply the norm layer itself."""
    bn = sam.bn
    if bn.training or not is_foldable(bn) or torch.jit.is_tracing():
        return bn(sam.proj0(mixed))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = sam.proj0.weight * scale[:, None, None, None]
    bias = (sam.proj0.bias - bn.running_mean) * scale + bn.bias
    return F.conv2d(mixed, weight, bias, groups=sam.proj0.groups)


def sam_modulator(sam: nn.Module, mixed: torch.Tensor) -> torch.Tensor:
    """SAM step 3, the aggregation ``proj1(act(bn(proj0(.))))`` of the
    interleaved map ``mixed``, as (B, C, N): BatchNorm folded into proj0
    (see :func:`_proj0_norm`), and proj1 as a batched (C, 2C) @ (2C, N)
    GEMM whose NCHW output forward reads as tokens.

    bmm (not matmul, which folds the batch through a transpose) hands the
    activation and the norm an NCHW gradient like their saved inputs;
    mixed layouts slow their backward.
    """
    hidden = sam.act(_proj0_norm(sam, mixed.flatten(1, 2)))
    weight = sam.proj1.weight.flatten(1).expand(hidden.shape[0], -1, -1)
    return torch.baddbmm(sam.proj1.bias[:, None], weight, hidden.flatten(2))
