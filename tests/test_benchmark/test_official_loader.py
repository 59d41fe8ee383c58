# Copyright (c) SMT-MM contributors. All rights reserved.
"""The official baseline: loaded from the official file by path without its
imports, it computes what our backbone computes on the same weights."""
import sys

import pytest
import torch

from smt_mm.benchmark.official import (build_official, load_official_module,
                                       official_to_ours)
from smt_mm.benchmark.sides import build_sides, compare_sides
from smt_mm.models import SMT

STUBBED = ('timm', 'ptflops', 'thop')


def test_official_module_loads_without_its_imports(official_file):
    before = {name for name in STUBBED if name in sys.modules}
    module = load_official_module(official_file)
    assert hasattr(module, 'smt_t')
    # the stand-ins are gone again
    assert {name for name in STUBBED if name in sys.modules} == before


def test_missing_official_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='official SMT model file'):
        load_official_module(str(tmp_path / 'nope.py'))


def test_a_file_without_smt_is_refused(tmp_path):
    other = tmp_path / 'smt.py'
    other.write_text('import timm\n')
    with pytest.raises(ValueError, match='not the official'):
        load_official_module(str(other))


def test_converted_weights_fit_ours_and_a_mismatch_is_named(official_file):
    official = build_official('t', load_official_module(official_file))
    ours = SMT('tiny', out_indices=(3, ))
    state = official_to_ours(official.state_dict(), ours)
    ours.load_state_dict(state)
    with pytest.raises(KeyError, match='key mismatch'):
        official_to_ours(official.state_dict(), SMT('small'))


def test_official_and_ours_agree_on_the_same_weights(official_file):
    models = build_sides('tiny', ['fast', 'official'], official_file,
                         torch.device('cpu'))
    report = compare_sides(models, torch.device('cpu'), 64)
    assert list(report) == ['official']
    assert report['official']['max_abs_feature_diff'] < 1e-4, report
    assert report['official']['max_rel_grad_diff'] < 1e-3, report


def test_a_file_python_cannot_load_is_one_line(tmp_path):
    from smt_mm.errors import LaunchError
    path = tmp_path / 'README.md'
    path.write_text('# not code\n')
    with pytest.raises(LaunchError, match='is not a Python file'):
        load_official_module(str(path))
