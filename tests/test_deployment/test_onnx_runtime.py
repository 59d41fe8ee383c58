# Copyright (c) SMT-MM contributors. All rights reserved.
"""smt_mm.deployment.onnx_runtime and preprocessing: the numpy data
preprocessor, a fixed-shape file's size check, the reading of outputs;
and ``import smt_mm`` leaves the deployment package (and onnx) alone."""
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config

from smt_mm.deployment.onnx_check import max_difference
from smt_mm.deployment.onnx_runtime import (check_input_shape, label_shares,
                                            softmax)
from smt_mm.deployment.preprocessing import normalise, preprocessor_settings
from smt_mm.errors import LaunchError


def test_normalise_converts_channels_and_pads():
    cfg = Config(
        dict(
            model=dict(),
            data_preprocessor=dict(
                mean=[1., 2., 3.],
                std=[2., 2., 2.],
                to_rgb=True,
                pad_size_divisor=8)))
    settings = preprocessor_settings(cfg)  # mmpretrain's top level
    image = np.stack([np.full((5, 6), c, np.uint8) for c in (10, 20, 30)])
    x = normalise(image, settings)
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
    # BGR in, RGB out: the first channel is the last loaded
    assert np.allclose(x[0, :, 0, 0], [(30 - 1) / 2, (20 - 2) / 2,
                                       (10 - 3) / 2])
    assert not x[0, :, 5:].any() and not x[0, :, :, 6:].any()


def test_check_input_shape_names_a_size_mismatch():

    class Input:
        shape = [1, 3, 224, 224]

    class Session:

        def get_inputs(self):
            return [Input()]

    check_input_shape(Session(), np.zeros((1, 3, 224, 224)))
    with pytest.raises(
            LaunchError,
            match=r'takes input \[1, 3, 224, 224\] '
            'but the test pipeline gives 1x3x200x300; export it '
            'with --dynamic or --shape 200 300'):
        check_input_shape(Session(), np.zeros((1, 3, 200, 300)))


def test_reading_outputs():
    probs = softmax(np.array([[1000., 1000.]]))
    assert np.allclose(probs, 0.5)
    label_map = np.array([[0, 2], [2, 2]])
    assert label_shares(label_map, ['a', 'b', 'c']) == [('a', .25), ('c', .75)]


def test_max_difference_is_relative_above_one():
    torch = pytest.importorskip('torch')
    reference = torch.tensor([10., -20.])
    assert max_difference(np.array([10., -19.]), reference) == 1 / 20
    assert max_difference(np.array([.5, 0.]), torch.tensor([.25, 0.])) == .25
    assert max_difference(np.zeros(3), reference) == float('inf')


def test_import_smt_mm_leaves_deployment_alone():
    code = ('import sys, smt_mm; '
            "print(sorted(m for m in ('smt_mm.deployment', 'onnx', "
            "'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == '[]'
