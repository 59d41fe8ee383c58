"""The FLOPs/params tool reproduces the official sizes."""
import os.path as osp

import pytest
import torch.nn as nn
from helpers import REPO, load_tool

from smt_mm.apis.complexity import count_complexity
from smt_mm.models import SMT


class _Classifier(nn.Module):
    """Backbone + mean pooling + linear head, as the official classifier."""

    def __init__(self, arch):
        super().__init__()
        self.backbone = SMT(arch)
        self.head = nn.Linear(self.backbone.embed_dims[-1], 1000)

    def forward(self, x, data_samples=None, mode='tensor'):
        return self.head(self.backbone(x)[-1].mean((2, 3)))


@pytest.mark.parametrize('arch, size, gflops, paper_gflops, params', [
    ('tiny', 224, 2.48, 2.40, 11_506_536),
    ('base', 224, 8.01, 7.73, 32_037_352),
])
def test_classifier_flops_both_conventions(arch, size, gflops, paper_gflops,
                                           params):
    result = count_complexity(_Classifier(arch), 'mmpretrain', (size, size))
    assert result['params'] == params
    assert result['flops'] / 1e9 == pytest.approx(gflops, abs=0.005)
    assert result['flops_without_attn_matmul'] / 1e9 == pytest.approx(
        paper_gflops, abs=0.005)


def test_get_flops_tool_on_a_detection_config(capsys):
    get_flops = load_tool('tools/analysis/get_flops.py')
    result = get_flops.main([
        osp.join(REPO, 'configs/det/smt_b_maskrcnn_3x.py'), '--shape', '256',
        '320'
    ])
    out = capsys.readouterr().out
    assert 'params: 51.' in out
    assert result['flops'] > result['flops_without_attn_matmul'] > 0
