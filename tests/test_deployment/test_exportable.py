# Copyright (c) SMT-MM contributors. All rights reserved.
"""smt_mm.deployment.exportable: the dynamic pool computes what
nn.AdaptiveAvgPool2d computes, only sized pools are swapped, and the
attention switch reaches every MSA block."""
import pytest
import torch
import torch.nn as nn

from smt_mm.deployment.exportable import (SDPA_OPSET, DynamicAdaptiveAvgPool2d,
                                          make_exportable,
                                          replace_adaptive_pools)


@pytest.mark.parametrize('size', [(1, 1), (2, 3), (3, 3), (6, 6), (2, 5)])
def test_dynamic_pool_equals_adaptive_pool(size):
    pool = DynamicAdaptiveAvgPool2d(size)
    for shape in ((2, 3, 7, 9), (1, 2, 16, 5), (1, 1, 3, 4), (1, 1, 13, 23)):
        x = torch.randn(shape)
        expected = nn.AdaptiveAvgPool2d(size)(x)
        torch.testing.assert_close(pool(x), expected)


def test_only_sized_adaptive_pools_are_swapped():
    model = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.AdaptiveAvgPool2d((None, 3)),
        nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.AdaptiveAvgPool2d((2, 6))))
    assert replace_adaptive_pools(model) == 2
    kinds = [type(m).__name__ for m in model.modules()][1:]
    assert kinds == [
        'AdaptiveAvgPool2d', 'AdaptiveAvgPool2d', 'Sequential',
        'DynamicAdaptiveAvgPool2d', 'DynamicAdaptiveAvgPool2d'
    ]


def test_swaps_follow_dynamic_and_opset(mini_arch):
    from smt_mm.models import SMT
    from smt_mm.models.backbones.smt import MSA

    def model():
        return nn.Sequential(
            SMT(arch=dict(mini_arch, depths=[1, 1, 2, 1])),
            nn.AdaptiveAvgPool2d(2))

    fixed = model()
    assert make_exportable(fixed, dynamic=False, opset=SDPA_OPSET) == {}
    assert isinstance(fixed[1], nn.AdaptiveAvgPool2d)
    old = model()
    changes = make_exportable(old, dynamic=True, opset=SDPA_OPSET - 1)
    assert sorted(changes) == ['adaptive pools', 'attention']
    assert changes['adaptive pools'].startswith('1 exported')
    blocks = [m for m in old.modules() if isinstance(m, MSA)]
    assert blocks and not any(block.fused_attn for block in blocks)
