# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT computes what the plain reference computation computes (outputs and
gradients), with either attention kernel, and compiles."""
import pytest
import torch
from helpers import MINI_ARCH
from helpers.reference_smt import ReferenceSMT

from smt_mm.models import SMT


def _randomise_batchnorms(model):
    # Non-trivial running statistics, so that folding BN into proj0 in eval
    # mode is actually exercised.
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen))
            m.running_var.copy_(0.5 +
                                torch.rand(m.num_features, generator=gen))
            m.weight.data.copy_(0.5 +
                                torch.rand(m.num_features, generator=gen))
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen))


def _run(model, x, train):
    model.train(train)
    model.zero_grad()
    x = x.clone().requires_grad_(train)
    # train mode updates BN running stats: start each run from the same ones
    state = {k: v.clone() for k, v in model.state_dict().items()}
    outs = model(x)
    grads = None
    if train:
        weights = torch.Generator().manual_seed(5)
        loss = sum(
            (o * torch.randn(o.shape, generator=weights)).sum() for o in outs)
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
    ref_outs, ref_grads = _run(ReferenceSMT(model), x, train)
    fast_outs, fast_grads = _run(model, x, train)
    for fast, ref in zip(fast_outs, ref_outs):
        assert fast.is_contiguous()
        assert (fast - ref).abs().max().item() <= 1e-5
    if train:
        _assert_grads_close(fast_grads, ref_grads)


def _sam_blocks(model):
    from smt_mm.models.backbones.smt import SAM
    blocks = [m for m in model.modules() if isinstance(m, SAM)]
    assert blocks and all(m.fused for m in blocks)  # fused by default
    return blocks


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_plain_sam_steps_match_the_fused_kernels(train, monkeypatch):
    # SAM.fused is the one switch: off, SAM computes the paper's steps as
    # written (no kernel of smt_kernels runs) and agrees with the fused
    # kernels and with the independent reference, outputs and gradients
    torch.manual_seed(0)
    model = SMT(MINI_ARCH)
    model.init_weights()
    _randomise_batchnorms(model)
    x = torch.randn(2, 3, 65, 47)
    fused_outs, fused_grads = _run(model, x, train)
    for m in _sam_blocks(model):
        m.fused = False
    from smt_mm.models.backbones import smt as smt_module

    def refuse(*args):
        raise AssertionError('a fused SAM kernel ran with fused=False')

    for name in ('sam_split_heads', 'sam_head_convs', 'sam_modulator'):
        monkeypatch.setattr(smt_module, name, refuse)
    plain_outs, plain_grads = _run(model, x, train)
    ref_outs, ref_grads = _run(ReferenceSMT(model), x, train)
    for plain, fused, ref in zip(plain_outs, fused_outs, ref_outs):
        assert (plain - fused).abs().max().item() <= 1e-5
        assert (plain - ref).abs().max().item() <= 1e-5
    if train:
        _assert_grads_close(plain_grads, fused_grads)
        _assert_grads_close(plain_grads, ref_grads)


def test_sam_steps_are_the_visualised_maps():
    # head_maps and modulator (what the visualisation draws) are forward's
    # steps, in either mode
    torch.manual_seed(0)
    model = SMT(MINI_ARCH).eval()
    _randomise_batchnorms(model)
    sam = _sam_blocks(model)[0]
    x, hw_shape = torch.randn(2, 6 * 5, sam.v.in_features), (6, 5)
    with torch.no_grad():
        want = sam(x, hw_shape)
        for fused in (True, False):
            sam.fused = fused
            mixed = sam.head_maps(x, hw_shape)
            assert mixed.shape == (2, sam.v.in_features // sam.num_heads,
                                   sam.num_heads, *hw_shape)
            got = sam.proj(sam.v(x) * sam.modulator(mixed).transpose(1, 2))
            assert (got - want).abs().max().item() <= 1e-5


def test_explicit_attention_switch_matches_fused():
    torch.manual_seed(0)
    model = SMT(MINI_ARCH).eval()
    x = torch.randn(1, 3, 64, 96)
    fused = model(x)
    msa = [m for m in model.modules() if hasattr(m, 'fused_attn')]
    assert msa and all(m.fused_attn for m in msa)
    for m in msa:
        m.fused_attn = False
    for a, b in zip(model(x), fused):
        assert (a - b).abs().max().item() <= 1e-5


def test_fused_attn_default_follows_the_environment(monkeypatch):
    monkeypatch.setenv('SMT_FUSED_ATTN', '0')
    assert not any(
        getattr(m, 'fused_attn', False) for m in SMT(MINI_ARCH).modules())


def test_fast_path_with_cp_and_layer_scale():
    arch = dict(MINI_ARCH, use_layerscale=True)
    torch.manual_seed(0)
    model = SMT(arch, with_cp=True, drop_path_rate=0.1)
    x = torch.randn(1, 3, 64, 64)
    # drop_path draws random numbers: compare from the same seed
    torch.manual_seed(1)
    fast_outs, fast_grads = _run(model, x, True)
    torch.manual_seed(1)
    ref_outs, ref_grads = _run(ReferenceSMT(model), x, True)
    for fast, ref in zip(fast_outs, ref_outs):
        assert (fast - ref).abs().max().item() <= 1e-5
    _assert_grads_close(fast_grads, ref_grads)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    # inductor on CPU builds C++ kernels with gcc: ~100 s on 2 cores
    torch.manual_seed(0)
    model = SMT(
        dict(
            MINI_ARCH,
            embed_dims=[8, 16, 32, 64],
            depths=[1, 2, 2, 1],
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
    mismatched = [
        name for name, p in model.named_parameters()
        if p.grad.stride() != p.stride()
    ]
    assert not mismatched
