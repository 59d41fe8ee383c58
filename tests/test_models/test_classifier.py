# Copyright (c) SMT-MM contributors. All rights reserved.
"""``SMTClassifier`` is a real class, importable by name, whose module (and
mmpretrain's models) ``import smt_mm`` does not import."""
import pickle
import subprocess
import sys

import pytest
import torch
from helpers import MINI_ARCH, REPO

from smt_mm.errors import CheckpointMismatchError

CLASSIFIER = dict(
    type='SMTClassifier',
    backbone=dict(type='SMT', arch=MINI_ARCH, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=128))


def build(cfg=CLASSIFIER):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def test_import_smt_mm_leaves_the_class_module_alone():
    code = '''
import sys
import smt_mm
import smt_mm.models.classifier as classifier
heavy = ('smt_mm.models.image_classifier', 'mmpretrain.models')
print([m in sys.modules for m in heavy])
cls = classifier.SMTClassifier
print([m in sys.modules for m in heavy], cls.__module__, cls.__name__)
'''
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=REPO,
                         check=True,
                         capture_output=True,
                         text=True).stdout.split('\n')
    assert out[-3:] == [
        '[False, False]',
        '[True, True] smt_mm.models.image_classifier SMTClassifier', ''
    ]


def test_the_class_is_importable_and_what_configs_build():
    from mmpretrain.models import ImageClassifier

    from smt_mm.models.classifier import SMTClassifier
    from smt_mm.models.image_classifier import SMTClassifier as same
    assert SMTClassifier is same
    assert issubclass(SMTClassifier, ImageClassifier)
    model = build()
    assert type(model) is SMTClassifier
    # a class found by name pickles (as mmengine's deepcopy / dumps do)
    assert pickle.loads(pickle.dumps(SMTClassifier)) is SMTClassifier
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone) is SMTClassifier


def test_unknown_attribute_is_an_attribute_error():
    import smt_mm.models.classifier as classifier
    with pytest.raises(AttributeError, match='SMTClassifer'):
        classifier.SMTClassifer


def test_loading_by_upstream_code_is_checked():
    """A plain load_state_dict (as mmengine's load_checkpoint does) of a
    state dict that misses a head key is refused by the classifier."""
    model = build()
    state = model.state_dict()
    del state['head.fc.bias']
    with pytest.raises(CheckpointMismatchError, match='head.fc.bias'):
        model.load_state_dict(state, strict=False)
    full = build().state_dict()
    model.load_state_dict(full)
    assert torch.equal(model.head.fc.weight, full['head.fc.weight'])
