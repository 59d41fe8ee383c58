# Copyright (c) SMT-MM contributors. All rights reserved.
"""Upstream code that loads weights into our models (mmpretrain's
get_model, mmengine's load_checkpoint, a plain load_state_dict) loads
strictly and refuses non-finite weights, complex ones included."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from helpers import MINI_ARCH, REPO
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from smt_mm.checkpoint import allow_partial_loading, load_checked
from smt_mm.errors import CheckpointLoadError, CheckpointMismatchError
from smt_mm.models import SMT

ARCH = dict(MINI_ARCH, depths=[1, 1, 1, 1])


def classifier_config():
    cfg = Config.fromfile(osp.join(REPO, 'configs/cls/smt_t_in1k.py'))
    cfg.model.backbone.arch = ARCH
    cfg.model.head.update(num_classes=10, in_channels=128)
    return cfg


def saved(tmp_path, name, state_dict):
    path = str(tmp_path / f'{name}.pth')
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    return path


def test_get_model_refuses_missing_keys_and_nan(tmp_path):
    from mmpretrain.apis import get_model
    state = get_model(classifier_config()).state_dict()
    good = saved(tmp_path, 'good', state)
    assert get_model(classifier_config(), pretrained=good) is not None
    key = 'backbone.stages.0.blocks.0.ffn.fc1.weight'
    missing = saved(tmp_path, 'missing', {
        k: v
        for k, v in state.items() if k != key
    })
    with pytest.raises(CheckpointMismatchError) as err:
        get_model(classifier_config(), pretrained=missing)
    assert f'1 missing: {key[len("backbone."):]}' in str(err.value) or \
        f'1 missing: {key}' in str(err.value)
    assert '\n' not in str(err.value)
    nan = saved(tmp_path, 'nan', dict(state, **{key: state[key] * torch.nan}))
    with pytest.raises(CheckpointLoadError, match='NaN or infinite'):
        get_model(classifier_config(), pretrained=nan)


def test_backbone_in_any_model_loads_strictly(tmp_path):
    """An mmdet/mmseg model holding SMT, loaded by mmengine's
    load_checkpoint (non-strict by default): the backbone's keys must fit
    and be finite; allow_partial_loading() opts out on purpose."""
    model = torch.nn.Module()
    model.backbone = SMT(ARCH)
    model.neck = torch.nn.Linear(2, 2)
    state = model.state_dict()
    key = 'backbone.stages.1.blocks.0.norm1.weight'
    partial = saved(tmp_path, 'partial', {
        k: v
        for k, v in state.items() if k != key
    })
    with pytest.raises(CheckpointMismatchError, match='1 missing'):
        load_checkpoint(model, partial)
    with allow_partial_loading():
        load_checkpoint(model, partial)
    inf = dict(state, **{key: state[key] + torch.inf})
    with pytest.raises(CheckpointLoadError, match=key.split('.', 1)[1]):
        model.load_state_dict(inf)


def test_complex_weights_are_refused():
    model = SMT(ARCH)
    state = model.state_dict()
    key = 'stages.0.blocks.0.ffn.fc1.weight'
    nan = dict(state,
               **{key: torch.full_like(state[key], complex(torch.nan, 0))})
    with pytest.raises(CheckpointLoadError, match='NaN or infinite'):
        load_checked(model, nan, 'c.pth', strict=False)
    finite = dict(state, **{key: state[key].to(torch.complex64)})
    with pytest.raises(
            CheckpointMismatchError,
            match=f'dtype mismatch: {key} '
            r'\(file torch.complex64, model torch.float32\)'):
        load_checked(model, finite, 'c.pth')


def test_import_warns_when_torch_is_told_to_unpickle_fully():
    code = 'import warnings\nwarnings.simplefilter("always")\nimport smt_mm'
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          timeout=300,
                          env=dict(
                              __import__('os').environ,
                              TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1'))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set' in proc.stderr
    assert 'enable_safe_loading()' in proc.stderr
