# Copyright (c) SMT-MM contributors. All rights reserved.
"""smt_mm.apis: a config's model and the names of its classes."""
import pytest
import torch
from helpers import REPO
from mmengine.config import Config

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick

DIGITS = f'{REPO}/configs/cls/smt_t_digits.py'
IN1K = f'{REPO}/configs/cls/smt_t_in1k.py'


def test_class_names_by_source():
    from smt_mm.apis import class_names
    from smt_mm.launch.config import load_config
    cfg = load_config(IN1K)
    # the dataset type's 1000 ImageNet names
    names = class_names(cfg, 1000)
    assert len(names) == 1000 and names[0].startswith('tench')
    # the checkpoint's training set comes first, when it fits the head
    meta = dict(dataset_meta=dict(classes=[f'c{i}' for i in range(1000)]))
    assert class_names(cfg, 1000, meta)[:2] == ['c0', 'c1']
    # names for another number of outputs fit nothing
    assert class_names(cfg, 10) is None
    cfg.test_dataloader.dataset.metainfo = dict(classes=list('abc'))
    assert class_names(cfg, 3) == ['a', 'b', 'c']


def test_build_model_random_or_strict(tmp_path, capsys):
    from smt_mm.apis import build_model
    from smt_mm.errors import SMTError
    cfg = Config.fromfile(DIGITS)
    model = build_model(cfg, random_note='random weights')
    assert not model.training
    assert 'warning: random weights' in capsys.readouterr().out
    path = tmp_path / 'partial.pth'
    state = model.state_dict()
    state.pop(next(iter(state)))
    torch.save({'state_dict': state}, path)
    with pytest.raises(SMTError):
        build_model(cfg, str(path))


def test_class_names_from_a_file_are_shortened():
    from mmengine.config import Config

    from smt_mm.apis import class_names
    cfg = Config(dict(test_dataloader=dict(dataset=dict())))
    names = class_names(cfg, 2,
                        {'dataset_meta': {
                            'classes': ['x' * 10**6, 'dog']
                        }})
    assert names == ['x' * 61 + '...', 'dog']
