# Copyright (c) SMT-MM contributors. All rights reserved.
"""A plain reference computation of SMT, over the parameters of a model.

:class:`smt_mm.models.SMT` computes with channels-last views, fused
attention, folded BatchNorm and a folded FFN identity. The functions here
compute the same model the direct way: NCHW tensors, one conv per
modulation head followed by an explicit interleave, BatchNorm applied on
its own, the N x N attention map, ``h + dwconv(h)`` (the patch
embeddings are the model's own). They read the
parameters of an existing ``SMT``, so both computations always use the
same weights. The tests check the model against this (an independent
reference, written differently from the model).

Example::

    model = SMT('tiny').eval()
    torch.testing.assert_close(model(x), ReferenceSMT(model)(x))
"""
from typing import Tuple

import torch
import torch.nn as nn

HW = Tuple[int, int]


def sam_reference(sam, x: torch.Tensor, hw_shape: HW) -> torch.Tensor:
    """Scale-Aware Modulation: per-head depthwise convs, interleave,
    aggregation (proj0 - BN - GELU - proj1), modulation of v."""
    B, N, C = x.shape
    H, W = hw_shape
    heads = sam.num_heads
    v = sam.v(x)
    s = sam.s(x).reshape(B, H, W, heads, C // heads)
    s = s.permute(3, 0, 4, 1, 2).contiguous()  # heads, B, C/h, H, W
    mixed = torch.stack([conv(s[i]) for i, conv in enumerate(sam.local_convs)],
                        dim=2)
    # channel c * heads + i of the mixed map is channel c of head i
    mixed = mixed.reshape(B, C, H, W)
    modulator = sam.proj1(sam.act(sam.bn(sam.proj0(mixed))))
    modulator = modulator.reshape(B, C, N).permute(0, 2, 1)
    return sam.proj(modulator * v)


def msa_reference(msa, x: torch.Tensor, hw_shape: HW) -> torch.Tensor:
    """Multi-head attention with the explicit N x N map, plus the
    depthwise conv of the values."""
    B, N, C = x.shape
    heads = msa.num_heads
    q = msa.q(x).reshape(B, N, heads, -1).permute(0, 2, 1, 3)
    k, v = msa.kv(x).reshape(B, N, 2, heads, -1).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1)) * msa.scale
    out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
    v_img = v.transpose(1, 2).reshape(B, N, C).transpose(1, 2)
    local = msa.local_conv(v_img.reshape(B, C, *hw_shape).contiguous())
    return msa.proj(out + local.reshape(B, C, N).transpose(1, 2))


def ffn_reference(ffn, x: torch.Tensor, hw_shape: HW) -> torch.Tensor:
    """``fc2(GELU(h + dwconv(h)))`` with ``h = fc1(x)``."""
    h = ffn.fc1(x)
    h_img = h.transpose(1, 2).reshape(h.shape[0], -1, *hw_shape)
    h = h + ffn.dwconv(h_img.contiguous()).flatten(2).transpose(1, 2)
    return ffn.fc2(ffn.act(h))


def _scaled(x, gamma):
    return x if gamma is None else x * gamma


def block_reference(block, x: torch.Tensor, hw_shape: HW) -> torch.Tensor:
    from smt_mm.models.backbones.smt import SAM
    mixer = sam_reference if isinstance(block.attn, SAM) else msa_reference
    x = x + block.drop_path(
        _scaled(mixer(block.attn, block.norm1(x), hw_shape), block.gamma1))
    return x + block.drop_path(
        _scaled(
            ffn_reference(block.ffn, block.norm2(x), hw_shape), block.gamma2))


def reference_forward(model, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The NCHW stage maps of ``model`` (an ``SMT``) for ``out_indices``."""
    from smt_mm.models.backbones.smt_args import check_input_size
    check_input_size(x, model.min_input_size)
    outs = []
    for i, stage in enumerate(model.stages):
        tokens, hw_shape = stage.patch_embed(x)
        for block in stage.blocks:
            tokens = block_reference(block, tokens, hw_shape)
        tokens = stage.norm(tokens)
        x = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *hw_shape)
        x = x.contiguous()
        if i in model.out_indices:
            outs.append(x)
    return tuple(outs)


class ReferenceSMT(nn.Module):
    """``model`` (an ``SMT``) computed by :func:`reference_forward`; shares
    its parameters, buffers and train/eval mode."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return reference_forward(self.model, x)
