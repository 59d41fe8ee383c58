"""Every segmentation config builds and runs one training step on CPU."""
import glob
import os.path as osp

import pytest
import torch
from helpers import REPO, one_block_per_stage
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

SEG_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs/seg/smt_*.py')))


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=osp.basename)
def test_config_builds_and_trains_one_step(path):
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    torch.manual_seed(0)
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    one_block_per_stage(cfg.model.backbone)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.train()
    num_classes = cfg.model.decode_head.num_classes
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, 64, 64)))
        sample.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(sample)
    inputs = torch.rand(2, 3, 64, 64)
    loss, _ = model.parse_losses(model.loss(inputs, samples))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.backbone.stages[0].patch_embed.stem.conv.weight.grad \
        is not None
