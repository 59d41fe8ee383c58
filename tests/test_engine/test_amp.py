# Copyright (c) SMT-MM contributors. All rights reserved.
"""``--amp`` without a GPU: bfloat16 autocast through BF16AmpOptimWrapper."""

import sys

import pytest
import torch
from helpers import (assert_finite_losses, run_tool, train_log, train_tiny_det,
                     write_tiny_det_config)
from mmengine.config import Config

from smt_mm.engine import BF16AmpOptimWrapper
from smt_mm.launch.config import (amp_message, amp_on_cpu, enable_amp,
                                  load_config)
from smt_mm.launch.runner import build_runner

# what mmdet's *_amp-* configs set (e.g. mask-rcnn_r50_fpn_amp-1x_coco.py)
AMP_CONFIG = "optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512.)"


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


@pytest.mark.slow
def test_maskrcnn_trains_with_amp_on_cpu(tmp_path):
    _, log = train_tiny_det(
        tmp_path, '--amp', env=dict(CUDA_VISIBLE_DEVICES=''))
    assert "type='BF16AmpOptimWrapper'" in log
    assert_finite_losses(log)


def test_amp_config_runs_bf16_without_cuda(monkeypatch):
    """A config that names mmengine's AmpOptimWrapper (mmdet's *_amp-*
    configs) gets the bfloat16 wrapper on CPU, with or without --amp."""
    amp = dict(
        type='AmpOptimWrapper',
        loss_scale=512.,
        optimizer=dict(type='SGD', lr=0.1))
    for switch in (amp_on_cpu, enable_amp):
        cfg = Config(dict(optim_wrapper=dict(amp)))
        switch(cfg)
        wrapper = cfg.optim_wrapper
        assert wrapper.type == 'BF16AmpOptimWrapper'
        assert 'loss_scale' not in wrapper
        assert tuple(wrapper.autocast_modules) == ('backbone', 'neck')
        assert amp_message(cfg).startswith('AMP on CPU: bfloat16 autocast')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(optim_wrapper=dict(amp)))
    assert not amp_on_cpu(cfg) and amp_message(cfg) is None
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'


def test_build_runner_trains_an_amp_config_on_cpu(tmp_path):
    """Through the runner the tools build: the config's AmpOptimWrapper
    (which asserts a GPU in mmengine) becomes BF16AmpOptimWrapper, and the
    log says so once."""
    config = write_tiny_det_config(
        tmp_path / 'data', num_train=2, max_epochs=1, extra=AMP_CONFIG)
    cfg = load_config(config)
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    runner.train()
    assert isinstance(runner.optim_wrapper, BF16AmpOptimWrapper)
    log = train_log(tmp_path / 'work')
    assert log.count('AMP on CPU: bfloat16 autocast') == 1
    assert_finite_losses(log)


@pytest.mark.slow
def test_amp_config_trains_through_train_py(tmp_path):
    config = write_tiny_det_config(
        tmp_path / 'data', num_train=2, max_epochs=1, extra=AMP_CONFIG)
    work = tmp_path / 'work'
    proc = run_tool(
        [sys.executable, 'tools/train.py', config, '--work-dir',
         str(work)],
        env=dict(CUDA_VISIBLE_DEVICES=''))
    assert (proc.stdout + proc.stderr).count('AMP on CPU: bfloat16') == 1
    log = train_log(work)
    assert "type='BF16AmpOptimWrapper'" in log
    assert 'AMP on CPU: bfloat16 autocast' in log
    assert_finite_losses(log)
