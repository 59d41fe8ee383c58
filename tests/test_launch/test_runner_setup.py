# Copyright (c) SMT-MM contributors. All rights reserved.
"""What the launchers add to a config before building the runner."""
import importlib.util

import pytest
from helpers import REPO

DET = 'configs/det/smt_t_maskrcnn_synth-quickstart.py'
SEG = 'configs/seg/smt_t_upernet_synth.py'


@pytest.mark.parametrize('installed', [True, False])
def test_tensorboard_backend_only_when_installed(monkeypatch, installed):
    from smt_mm.launch.config import load_config
    from smt_mm.launch.runner import add_tensorboard_backend
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: (object()
                                                       if installed else None)
        if name == 'tensorboard' else real(name, *a))
    for config in (DET, SEG):
        cfg = load_config(f'{REPO}/{config}')
        assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend')]
        assert add_tensorboard_backend(cfg) is installed
        types = [b['type'] for b in cfg.visualizer.vis_backends]
        expected = ['LocalVisBackend'
                    ] + (['TensorboardVisBackend'] if installed else [])
        assert types == expected
        assert not add_tensorboard_backend(cfg)  # never twice
