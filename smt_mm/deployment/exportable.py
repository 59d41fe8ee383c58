# Copyright (c) SMT-MM contributors. All rights reserved.
"""Swaps that make a model export to ONNX correctly: adaptive pools that
follow the input size, and attention without the fused operator."""
from typing import Dict, Tuple

import torch
import torch.nn as nn

from smt_mm.models.backbones.smt import MSA

# the first opset with an export of scaled_dot_product_attention
SDPA_OPSET = 14


def _adaptive_mean(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Adaptive average pooling along one dimension.

    The bins are PyTorch's, ``[floor(i L / size), ceil((i + 1) L /
    size))``; their bounds are computed from ``x.shape`` so that a traced
    graph keeps them as functions of the input size.

    Args:
        x (torch.Tensor): The input.
        size (int): The number of bins.
        dim (int): The dimension pooled.

    Returns:
        torch.Tensor: ``x`` with ``size`` entries along ``dim``.
    """
    length = x.shape[dim]
    bins = []
    for i in range(size):
        start = (i * length) // size
        end = ((i + 1) * length + size - 1) // size
        index = (slice(None), ) * dim + (slice(start, end), )
        bins.append(x[index].mean(dim, keepdim=True))
    return torch.cat(bins, dim)


class DynamicAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` for export with dynamic height and width.

    ONNX has no adaptive pooling: both exporters turn a pool whose output
    is larger than 1x1 into a fixed-kernel pool for the example's size,
    which is wrong at other sizes (UPerNet's pyramid pooling). A mean over
    a rectangle is the mean over its rows of the means over its columns,
    so this pools the two axes in turn.

    Args:
        output_size (tuple): The output (h, w).
    """

    def __init__(self, output_size: Tuple[int, int]):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _adaptive_mean(x, self.output_size[0], x.dim() - 2)
        return _adaptive_mean(x, self.output_size[1], x.dim() - 1)


def use_explicit_attention(model: nn.Module) -> int:
    """Compute SMT's attention as ``softmax(q k^T) v`` instead of with
    ``scaled_dot_product_attention``, which ONNX opsets below 14 lack.

    Args:
        model (nn.Module): The model, changed in place.

    Returns:
        int: The number of attention blocks switched.
    """
    blocks = [m for m in model.modules() if isinstance(m, MSA)]
    for block in blocks:
        block.fused_attn = False
    return len(blocks)


def replace_adaptive_pools(model: nn.Module) -> int:
    """Swap every ``nn.AdaptiveAvgPool2d`` with a fixed output larger than
    1x1 for a :class:`DynamicAdaptiveAvgPool2d` (1x1 exports as a global
    pool, which follows the input size already).

    Args:
        model (nn.Module): The model, changed in place.

    Returns:
        int: The number of pools swapped.
    """
    swapped = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if not isinstance(child, nn.AdaptiveAvgPool2d):
                continue
            size = child.output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            if None in size or size == (1, 1):
                continue
            setattr(parent, name, DynamicAdaptiveAvgPool2d(size))
            swapped += 1
    return swapped


def make_exportable(model: nn.Module, dynamic: bool,
                    opset: int) -> Dict[str, str]:
    """Swap in exportable equivalents where the export needs them.

    Call it after PyTorch's reference outputs are computed, so that the
    check compares the export with the model as it was.

    Args:
        model (nn.Module): The model, changed in place.
        dynamic (bool): Whether height and width are dynamic.
        opset (int): The ONNX opset exported.

    Returns:
        dict: A summary line for each kind of swap made.
    """
    changes = {}
    swapped = replace_adaptive_pools(model) if dynamic else 0
    if swapped:
        changes['adaptive pools'] = (f'{swapped} exported as per-bin means '
                                     'that follow the input size')
    if opset < SDPA_OPSET and use_explicit_attention(model):
        changes['attention'] = ('explicit softmax(q k^T) v (opset < '
                                f'{SDPA_OPSET} has no fused attention)')
    return changes
