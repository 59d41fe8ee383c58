# Copyright (c) SMT-MM contributors. All rights reserved.
"""``--amp`` without a GPU: bfloat16 autocast through BF16AmpOptimWrapper."""

import torch
from helpers import assert_finite_losses, train_tiny_det
from mmengine.config import Config

from smt_mm.engine import BF16AmpOptimWrapper
from smt_mm.utils.config import enable_amp


class Net(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        self.seen = [self.backbone(x)]
        self.seen.append(self.head(self.seen[0]))
        return self.seen[-1]


def _wrapper(net, **kwargs):
    return BF16AmpOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1), **kwargs)


def test_whole_forward_runs_in_bf16_and_steps():
    net = Net()
    wrapper = _wrapper(net)
    before = net.head.weight.detach().clone()
    with wrapper.optim_context(net):
        out = net(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert not torch.equal(before, net.head.weight)
    assert net(torch.randn(3, 4)).dtype == torch.float32  # context closed


def test_autocast_modules_limits_bf16_to_those_children():
    net = Net()
    captured = []
    net.backbone.register_forward_hook(
        lambda m, a, out: captured.append(out.dtype))
    with _wrapper(net, autocast_modules=('backbone', )).optim_context(net):
        out = net(torch.randn(3, 4))
    # inside the backbone bf16, its output back in float32 for the head
    assert captured == [torch.bfloat16]
    assert net.seen[0].dtype == torch.float32
    assert out.dtype == torch.float32
    net(torch.randn(3, 4))  # hooks are gone after the context
    assert captured[-1] == torch.float32


def test_enable_amp_picks_the_wrapper_for_the_device(monkeypatch):
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD'))))
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'BF16AmpOptimWrapper'
    assert tuple(cfg.optim_wrapper.autocast_modules) == ('backbone', 'neck')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD'))))
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'


def test_maskrcnn_trains_with_amp_on_cpu(tmp_path):
    log = train_tiny_det(tmp_path, '--amp', env=dict(CUDA_VISIBLE_DEVICES=''))
    assert "type='BF16AmpOptimWrapper'" in log
    assert_finite_losses(log)
