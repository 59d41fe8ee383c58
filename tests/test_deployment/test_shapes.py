# Copyright (c) SMT-MM contributors. All rights reserved.
"""smt_mm.deployment.shapes: the export size comes from --shape, a
segmentor's crop size, the test pipeline (rounded up to the padding) or
the task's default, and says which."""
import os.path as osp

import pytest
from helpers import REPO
from mmengine.config import Config

from smt_mm.apis import DEFAULT_INPUT_SHAPES
from smt_mm.deployment.shapes import export_shape, pipeline_shape, second_shape
from smt_mm.launch.config import load_config

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


@pytest.mark.parametrize('config,shape,source', [
    ('configs/cls/smt_t_digits.py', (32, 32), 'Resize 32x32'),
    ('configs/cls/smt_t_in1k.py', (224, 224), 'CenterCrop 224x224'),
    ('configs/det/smt_t_maskrcnn_synth-quickstart.py',
     (128, 128), 'Resize 128x128'),
    ('configs/det/smt_t_maskrcnn_1x.py',
     (800, 1344), 'Resize 1333x800), padded to a multiple of 32'),
    ('configs/seg/smt_t_upernet_synth.py', (128, 128), 'crop size'),
])
def test_export_size_comes_from_the_test_pipeline(config, shape, source):
    cfg = load_config(osp.join(REPO, config))
    found, note = export_shape(cfg, cfg.default_scope, None)
    assert found == shape and source in note, (found, note)
    assert export_shape(cfg, cfg.default_scope,
                        [64, 96]) == ((64, 96), '--shape')


def test_pipeline_steps_and_default():
    cfg = Config(
        dict(
            model=dict(),
            test_pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='ResizeEdge', scale=256),
                dict(type='RandomCrop', crop_size=(96, 64)),
            ]))
    # the last step fixing the size wins; mmpretrain's RandomCrop is (h, w)
    assert pipeline_shape(cfg, 'mmpretrain') == ((96, 64), 'RandomCrop 64x96')
    cfg.test_pipeline = cfg.test_pipeline[:2]
    assert pipeline_shape(cfg, 'mmpretrain') == ((256, 256), 'ResizeEdge 256')
    cfg.test_pipeline = [dict(type='LoadImageFromFile')]
    assert pipeline_shape(cfg, 'mmdet') == (None, None)
    found, note = export_shape(cfg, 'mmdet', None)
    assert found == DEFAULT_INPUT_SHAPES['mmdet']
    assert note.startswith('the default of the task')


def test_second_shape_differs_in_ratio_and_stride():
    height, width = second_shape((64, 64))
    assert height != width and width % 32
