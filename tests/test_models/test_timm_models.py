# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT through ``timm.create_model`` (optional extra ``timm``): the release
file loads safely and strictly and gives the official outputs, for
classification and ``features_only``; what timm's model tests ask of its
own models (``device=`` / ``dtype=``, torch.fx tracing and fx feature
extraction) holds."""
import os.path as osp
import pickle

import pytest
import torch
from helpers import MINI_ARCH

from smt_mm.errors import (CheckpointMismatchError, SMTConfigError,
                           UnsafeCheckpointError)

timm = pytest.importorskip('timm')
timm_models = pytest.importorskip('smt_mm.models.timm_models')


@pytest.fixture(scope='module')
def fixture(fixtures_dir):
    """(release file path, arch dict, number of classes, expected case)."""
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = dict(expected['arch'])
    num_classes = arch.pop('num_classes')
    return (osp.join(fixtures_dir, 'smt_tiny_official.pth'), arch, num_classes,
            expected['cases'][0])


def create(name, file, **kwargs):
    return timm.create_model(
        name,
        pretrained=True,
        pretrained_cfg_overlay=dict(file=file),
        **kwargs).eval()


def test_registered_names_and_configs():
    assert {'smt_t', 'smt_s', 'smt_b',
            'smt_l'} <= set(timm.list_models('smt_*'))
    model = timm.create_model('smt_t')
    assert isinstance(model, timm_models.TimmSMT)
    assert model.pretrained_cfg['url'].endswith('/smt_tiny.pth')
    assert model.num_features == 512 and model.num_classes == 1000
    # the toolkit's backbone, not a copy: same parameter count as SMT-T
    backbone = sum(p.numel() for n, p in model.named_parameters()
                   if n.startswith('stages.'))
    assert backbone == 10993536


def test_classification_matches_the_official_logits(fixture):
    path, arch, num_classes, case = fixture
    model = create('smt_t', path, arch=arch, num_classes=num_classes)
    with torch.no_grad():
        logits = model(case['input'])
    torch.testing.assert_close(logits, case['logits'], atol=1e-5, rtol=1e-4)
    # another number of classes: the backbone loads, the head is left out
    other = create('smt_t', path, arch=arch, num_classes=3)
    torch.testing.assert_close(other.stages[0].norm.weight,
                               model.stages[0].norm.weight)


def test_features_only_returns_the_stage_maps(fixture):
    path, arch, num_classes, case = fixture
    features = create(
        'smt_t',
        path,
        arch=arch,
        num_classes=num_classes,
        features_only=True,
        out_indices=(1, 2, 3))
    assert features.feature_info.channels() == [32, 64, 128]
    assert features.feature_info.reduction() == [8, 16, 32]
    with torch.no_grad():
        maps = features(case['input'])
    assert len(maps) == 3
    for got, want in zip(maps, case['stages'][1:]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    odd = features(torch.rand(1, 3, 67, 45))  # any size from 32 up
    assert [tuple(m.shape[2:]) for m in odd] == [(9, 6), (5, 3), (3, 2)]


def test_loading_is_strict_and_safe(fixture, tmp_path):
    path, arch, num_classes, _ = fixture
    with pytest.raises(CheckpointMismatchError, match='shape mismatch'):
        create('smt_t', path)  # SMT-T does not fit the small file
    evil = tmp_path / 'evil.pth'

    class Payload:

        def __reduce__(self):
            return (print, ('pwned', ))

    torch.save({'model': Payload()}, evil, pickle_protocol=2)
    with pytest.raises(UnsafeCheckpointError):
        create('smt_t', str(evil), arch=arch, num_classes=num_classes)
    assert pickle.HIGHEST_PROTOCOL >= 2


# -- what timm's own model tests ask of a model --------------------------
def small_model(**kwargs):
    torch.manual_seed(0)
    return timm.create_model('smt_t', arch=MINI_ARCH, num_classes=5, **kwargs)


def test_create_model_on_a_device_and_in_a_dtype():
    model = small_model(device='cpu', dtype=torch.float64)
    tensors = [*model.parameters(), *model.buffers()]
    assert {t.device.type for t in tensors} == {'cpu'}
    assert {t.dtype for t in tensors if t.is_floating_point()} == \
        {torch.float64}
    model.reset_classifier(3)  # the new head follows the model
    assert model.head.weight.dtype == torch.float64
    assert model(torch.rand(1, 3, 32, 32, dtype=torch.float64)).shape == \
        (1, 3)


def test_meta_device_allocates_nothing_and_materialises():
    model = small_model(device='meta')
    assert {t.device.type for t in model.state_dict().values()} == {'meta'}
    model.to_empty(device='cpu')
    model.init_weights()
    fresh = small_model()
    for name, value in fresh.state_dict().items():
        if 'bn.' in name or name.endswith(('.norm.bias', 'norm1.weight')):
            # norms and BatchNorm statistics as built, not memory garbage
            torch.testing.assert_close(model.state_dict()[name], value)
    assert torch.isfinite(model.eval()(torch.rand(1, 3, 64, 64))).all()


def test_head_interface_as_timm_models_have_it():
    """The attributes and modes timm's model tests (and its optimizer and
    feature factories) read: in_chans, head_hidden_size = pre_logits'
    width, a new classifier in the model's train/eval mode."""
    model = small_model(in_chans=1).eval()
    assert model.in_chans == 1 and model.head_hidden_size == 128
    x = torch.rand(2, 1, 64, 64)
    pre = model.forward_head(model.forward_features(x), pre_logits=True)
    assert pre.shape == (2, model.head_hidden_size)
    model.reset_classifier(3)
    assert not model.head.training
    model.reset_classifier(0)
    assert model(x).shape == pre.shape


def test_pretrained_with_other_input_channels(fixture):
    """in_chans=1 with a 3-channel release file: the stem's filters summed
    over RGB (timm's adapt_input_conv), everything else loaded strictly."""
    path, arch, num_classes, _ = fixture
    rgb = create('smt_t', path, arch=arch, num_classes=num_classes)
    grey = create(
        'smt_t', path, arch=arch, num_classes=num_classes, in_chans=1)
    stem = 'stages.0.patch_embed.stem.conv.weight'
    torch.testing.assert_close(grey.state_dict()[stem],
                               rgb.state_dict()[stem].sum(1, keepdim=True))
    for name, value in rgb.state_dict().items():
        if name != stem:
            torch.testing.assert_close(grey.state_dict()[name], value)


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_fx_symbolic_trace_computes_what_the_model_does(train):
    model = small_model().train(train)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 64, 64, requires_grad=train)
    out = model(x)
    torch.testing.assert_close(traced(x), out, rtol=0, atol=0)
    if train:  # the backward pass of the traced graph is the model's
        grad = torch.autograd.grad(out.sum(), x)[0]
        traced_grad = torch.autograd.grad(traced(x).sum(), x)[0]
        torch.testing.assert_close(traced_grad, grad)
    # the size check is recorded, not dropped: same message as the model
    with pytest.raises(
            SMTConfigError,
            match=r'input 16x40 \(HxW\) is '
            'smaller than the minimum 32x32'):
        traced(torch.rand(1, 3, 16, 40))


def test_fx_feature_extraction_returns_the_stage_maps():
    from timm.models import FeatureGraphNet
    model = small_model().eval()
    features = FeatureGraphNet(model, out_indices=(1, 2, 3))
    assert features.feature_info.channels() == [32, 64, 128]
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for mode in (False, True):  # the eval and the train graph
            want = model.train(mode).forward_intermediates(
                x, indices=[1, 2, 3], intermediates_only=True)
            maps = features.train(mode)(x)
            assert len(maps) == 3
            for got, expected in zip(maps, want):
                torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # timm's factory path for the same extractor
    built = timm.create_model(
        'smt_t',
        arch=MINI_ARCH,
        features_only=True,
        feature_cls='fx',
        out_indices=(1, 3))
    assert [tuple(m.shape) for m in built(x)] == [(2, 32, 8, 12),
                                                  (2, 128, 2, 3)]
