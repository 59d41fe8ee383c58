# Copyright (c) SMT-MM contributors. All rights reserved.
"""Parameter and FLOP counts of any SMT-MM config.

FLOPs follow the fvcore/mmengine convention (one multiply-add = one FLOP).
Two numbers are reported, because papers disagree: with the attention
matmuls (q @ k^T and attn @ v inside ``scaled_dot_product_attention``) and
without them, as the SMT paper counts.
"""
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def attention_matmul_flops(inputs, outputs) -> int:
    """q @ k^T plus attn @ v of ``aten::scaled_dot_product_attention``."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch_heads = 1
    for size in q[:-2]:
        batch_heads *= size
    queries, keys = q[-2], k[-2]
    return batch_heads * queries * keys * (q[-1] + v[-1])


def baddbmm_flops(inputs, outputs) -> int:
    """The batched product of ``aten::baddbmm(bias, a, b)`` (the fast
    path's head-major scale projection); the bias add is not counted, as
    for linear layers."""
    batch, rows, inner = get_shape(inputs[1])
    return batch * rows * inner * get_shape(inputs[2])[-1]


def analyze_flops(module: nn.Module, inputs: Tuple) -> FlopAnalyzer:
    """mmengine's ``FlopAnalyzer`` of ``module(*inputs)`` that also counts
    the ops of SMT's computation it has no handle for (attention matmuls
    inside SDPA, the batched scale projection)."""
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention',
                           attention_matmul_flops, 'aten::baddbmm',
                           baddbmm_flops)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


class _TensorForward(nn.Module):
    """Calls a task model's tensor-mode forward on one input tensor."""

    def __init__(self, model: nn.Module, task: str, data_samples=None):
        super().__init__()
        self.model = model
        self.task = task
        self.data_samples = data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')


def _det_data_samples(shape: Tuple[int, int]):
    from mmdet.structures import DetDataSample
    sample = DetDataSample()
    sample.set_metainfo(
        dict(
            img_shape=shape,
            ori_shape=shape,
            pad_shape=shape,
            batch_input_shape=shape,
            scale_factor=(1., 1.)))
    return [sample]


def count_complexity(model: nn.Module, task: str,
                     shape: Tuple[int, int]) -> Dict[str, float]:
    """Params and FLOPs (with / without attention matmuls) at ``shape``."""
    model = model.eval()
    samples = _det_data_samples(shape) if task == 'mmdet' else None
    wrapper = _TensorForward(model, task, samples).eval()
    inputs = (torch.rand(1, 3, *shape), )
    with torch.no_grad():
        analyzer = analyze_flops(wrapper, inputs)
        with_attn = analyzer.total()
        by_op = analyzer.by_operator()
    attn = by_op.get('scaled_dot_product_attention', 0)
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        flops=float(with_attn),
        flops_without_attn_matmul=float(with_attn - attn))
