import pytest
import torch
from helpers import MINI_ARCH
from torch.nn.modules.batchnorm import _BatchNorm

from smt_mm.errors import SMTConfigError
from smt_mm.models import SMT

# the input-size tests need all four stages, not depth
SHALLOW_ARCH = dict(MINI_ARCH, depths=[1, 1, 1, 1])

# Parameter counts of the official models, without the head.
OFFICIAL_PARAMS = {
    'tiny': 10_993_536,
    'small': 22_037_952,
    'base': 31_524_352,
    'large': 79_851_264,
}


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('arch', sorted(OFFICIAL_PARAMS))
def test_preset_param_counts_equal_official(arch):
    assert num_params(SMT(arch)) == OFFICIAL_PARAMS[arch]
    assert num_params(SMT(arch[0])) == OFFICIAL_PARAMS[arch]


def test_output_shapes_strides_and_channels():
    model = SMT('tiny').eval()
    outs = model(torch.rand(1, 3, 224, 160))
    assert [tuple(o.shape)
            for o in outs] == [(1, 64, 56, 40), (1, 128, 28, 20),
                               (1, 256, 14, 10), (1, 512, 7, 5)]


def test_outputs_are_nchw_contiguous_for_mmcv_ops():
    # mmcv's RoIAlign reads raw NCHW memory: on a channels-last view it
    # returns wrong features without any error (it froze Mask R-CNN's RoI
    # heads at chance level).
    from mmcv.ops import roi_align
    from torchvision.ops import roi_align as stride_aware_roi_align
    outs = SMT(MINI_ARCH).eval()(torch.rand(1, 3, 64, 96))
    assert all(o.is_contiguous() for o in outs)
    rois = torch.tensor([[0., 2., 3., 12., 10.]])
    pooled = roi_align(outs[0], rois, (7, 7), 1.0, 2, 'avg', True)
    expected = stride_aware_roi_align(outs[0], rois, (7, 7), 1.0, 2, True)
    torch.testing.assert_close(pooled, expected)


@pytest.mark.parametrize('size', [(32, 32), (33, 33), (47, 61), (65, 32),
                                  (97, 35), (224, 33)])
def test_odd_input_sizes_run(size):
    model = SMT(SHALLOW_ARCH).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    h, w = size
    # stem: stride 2 then 2 (floor), stages 2-4: stride 2 with padding 1
    h, w = (h + 1) // 2 // 2, (w + 1) // 2 // 2
    for i, out in enumerate(outs):
        if i:
            h, w = (h + 1) // 2, (w + 1) // 2
        assert out.shape == (1, SHALLOW_ARCH['embed_dims'][i], h, w)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('size', [(31, 64), (64, 16), (8, 8)])
def test_too_small_input_names_size_and_minimum(size):
    model = SMT(SHALLOW_ARCH).eval()
    with pytest.raises(SMTConfigError) as err:
        model(torch.rand(1, 3, *size))
    assert f'{size[0]}x{size[1]}' in str(err.value)
    assert 'minimum 32x32' in str(err.value)


def test_out_indices_select_and_accept_negative():
    model = SMT(MINI_ARCH, out_indices=(1, -1)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]


def test_hybrid_stage_alternates_sam_and_msa():
    model = SMT('tiny')
    kinds = [type(b.attn).__name__ for b in model.stages[2].blocks]
    assert kinds == ['SAM', 'MSA'] * 4
    assert all(type(b.attn).__name__ == 'SAM' for b in model.stages[1].blocks)
    assert all(type(b.attn).__name__ == 'MSA' for b in model.stages[3].blocks)


def test_layer_scale_only_in_large():
    assert SMT('large').stages[0].blocks[0].gamma1.shape == (96, )
    assert SMT('tiny').stages[0].blocks[0].gamma1 is None


@pytest.mark.parametrize('arch, message', [
    ('huge', "unknown arch 'huge'"),
    (dict(embed_dim=[8]), "unknown arch key(s) ['embed_dim']"),
    (dict(MINI_ARCH, depths=[1, 1]), 'one entry per stage'),
])
def test_bad_arch_is_a_clear_error(arch, message):
    with pytest.raises(ValueError) as err:
        SMT(arch)
    assert message in str(err.value)
    if isinstance(arch, str):
        assert "'base'" in str(err.value)  # lists the valid names


@pytest.mark.parametrize('kwargs, message', [
    (dict(out_indices=(0, 4)), 'out_indices entry 4 is out of range'),
    (dict(frozen_stages=5), 'frozen_stages=5 is out of range'),
])
def test_bad_indices_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SMT(MINI_ARCH, **kwargs)


def test_frozen_stages_have_no_grad_and_stay_in_eval():
    model = SMT(MINI_ARCH, frozen_stages=2)
    model.train()
    for i, stage in enumerate(model.stages):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())


def test_norm_eval_keeps_batchnorm_statistics():
    model = SMT(MINI_ARCH, norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    before = bns[0].running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(bns[0].running_mean, before)


def test_drop_path_is_stochastic_depth():
    model = SMT(MINI_ARCH, drop_path_rate=0.5)
    rates = [b.drop_path.drop_prob for s in model.stages for b in s.blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.5)
    assert rates == sorted(rates)
    # Stochastic depth drops a whole sample's branch: some samples pass a
    # block unchanged (both branches dropped), the others do not.
    torch.manual_seed(0)
    block = SMT(MINI_ARCH).stages[3].blocks[0].train()
    block.drop_path.drop_prob = 0.5
    x = torch.rand(64, 4, 128)
    unchanged = (block(x, (2, 2)) == x).flatten(1).all(1).sum().item()
    assert 0 < unchanged < 64
    block.eval()
    assert (block(x, (2, 2)) == x).flatten(1).all(1).sum().item() == 0


def test_with_cp_same_gradients_and_fewer_saved_activations():
    torch.manual_seed(0)
    plain = SMT(MINI_ARCH).train()
    ckpt = SMT(MINI_ARCH, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)

    def run(model):
        saved = []

        def pack(tensor):
            saved.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = sum(o.square().mean() for o in model(x))
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        return sum(saved), grads

    plain_bytes, plain_grads = run(plain)
    ckpt_bytes, ckpt_grads = run(ckpt)
    assert ckpt_bytes < 0.5 * plain_bytes
    for a, b in zip(plain_grads, ckpt_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_forward_keeps_no_state_on_modules():
    model = SMT(MINI_ARCH).eval()
    before = {k: set(vars(m)) for k, m in model.named_modules()}
    model(torch.rand(1, 3, 64, 64))
    after = {k: set(vars(m)) for k, m in model.named_modules()}
    assert before == after
