# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT through ``timm.create_model`` (optional extra ``timm``): the release
file loads safely and strictly and gives the official outputs, for
classification and ``features_only``."""
import os.path as osp
import pickle

import pytest
import torch

from smt_mm.errors import CheckpointMismatchError, UnsafeCheckpointError

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
