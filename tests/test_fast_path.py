# Copyright (c) SMT-MM contributors. All rights reserved.
"""The fast and reference computations of SMT agree, and the backbone
compiles."""
import pytest
import torch

from smt_mm.models import SMT

MINI_ARCH = dict(embed_dims=[16, 32, 64, 128], depths=[1, 2, 3, 1])


def _randomise_batchnorms(model):
    # Non-trivial running statistics, so that folding BN into proj0 in eval
    # mode is actually exercised.
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen))
            m.running_var.copy_(
                0.5 + torch.rand(m.num_features, generator=gen))
            m.weight.data.copy_(
                0.5 + torch.rand(m.num_features, generator=gen))
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen))


def _run(model, impl, x, train):
    model.set_impl(impl).train(train)
    model.zero_grad()
    x = x.clone().requires_grad_(train)
    # train mode updates BN running stats: start each run from the same ones
    state = {k: v.clone() for k, v in model.state_dict().items()}
    outs = model(x)
    grads = None
    if train:
        weights = torch.Generator().manual_seed(5)
        loss = sum((o * torch.randn(o.shape, generator=weights)).sum()
                   for o in outs)
        loss.backward()
        grads = [x.grad] + [p.grad for p in model.parameters()]
    model.load_state_dict(state)
    return [o.detach() for o in outs], grads


def _assert_grads_close(fast_grads, ref_grads):
    """Per tensor, within 1e-4 of its own scale, plus 1e-6 of the largest
    gradient (some gradients, e.g. of biases feeding a LayerNorm, are
    ~0 up to rounding and have no scale of their own)."""
    scale = max(g.abs().max().item() for g in ref_grads)
    for fast, ref in zip(fast_grads, ref_grads):
        tol = 1e-4 * ref.abs().max().item() + 1e-6 * scale
        assert (fast - ref).abs().max().item() <= tol


@pytest.mark.parametrize('size', [(64, 64), (65, 47), (33, 97)])
@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_fast_matches_reference(size, train):
    torch.manual_seed(0)
    model = SMT(MINI_ARCH)
    model.init_weights()
    _randomise_batchnorms(model)
    x = torch.randn(2, 3, *size)
    ref_outs, ref_grads = _run(model, 'reference', x, train)
    fast_outs, fast_grads = _run(model, 'fast', x, train)
    for fast, ref in zip(fast_outs, ref_outs):
        assert fast.is_contiguous()
        assert (fast - ref).abs().max().item() <= 1e-5
    if train:
        _assert_grads_close(fast_grads, ref_grads)


def test_fast_and_reference_share_state_dict_keys():
    fast = SMT(MINI_ARCH, impl='fast')
    ref = SMT(MINI_ARCH, impl='reference')
    assert {k: v.shape for k, v in fast.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}


def test_bad_impl_is_a_clear_error():
    with pytest.raises(ValueError, match="impl must be one of"):
        SMT(MINI_ARCH, impl='turbo')


def test_fast_path_with_cp_and_layer_scale():
    arch = dict(MINI_ARCH, use_layerscale=True)
    torch.manual_seed(0)
    model = SMT(arch, with_cp=True, drop_path_rate=0.1)
    x = torch.randn(1, 3, 64, 64)
    # drop_path draws random numbers: compare from the same seed
    torch.manual_seed(1)
    fast_outs, fast_grads = _run(model, 'fast', x, True)
    torch.manual_seed(1)
    ref_outs, ref_grads = _run(model, 'reference', x, True)
    for fast, ref in zip(fast_outs, ref_outs):
        assert (fast - ref).abs().max().item() <= 1e-5
    _assert_grads_close(fast_grads, ref_grads)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    # inductor on CPU builds C++ kernels with gcc: ~100 s on 2 cores
    torch.manual_seed(0)
    model = SMT(dict(embed_dims=[8, 16, 32, 64], depths=[1, 2, 2, 1],
                     sa_num_heads=[-1, -1, 2, 4])).eval()
    _randomise_batchnorms(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model)(x)
    for c, e in zip(compiled, eager):
        assert c.is_contiguous()
        assert (c - e).abs().max().item() <= 1e-4


def test_gradients_keep_parameter_strides():
    # DDP's bucket views take each parameter's strides; depthwise weights
    # used to receive channels-last gradients (another stride in their
    # size-1 dim), which DDP copies every step with a warning.
    model = SMT(MINI_ARCH).train()
    sum(o.sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
    mismatched = [name for name, p in model.named_parameters()
                  if p.grad.stride() != p.stride()]
    assert not mismatched
