"""Every detection config builds and runs one training step on CPU."""
import glob
import os.path as osp

import pytest
import torch
from helpers import REPO, one_block_per_stage
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

DET_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs/det/smt_*.py')))

# What a one-step test keeps of the recipes' sampling sizes: RoIs and
# proposals per image (the heads, losses and assigners stay as shipped).
FEW = dict(num=64, nms_pre=200, max_per_img=100, num_proposals=20)


def fewer_samples(node):
    """Cap the sampler sizes and proposal counts of a model config in place
    (a cascade head's 3 x 512 RoIs take most of a CPU training step)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FEW and isinstance(value, int):
                node[key] = min(value, FEW[key])
            else:
                fewer_samples(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            fewer_samples(value)


def build_detector(path, shallow=False):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # no ImageNet file in tests
    if shallow:
        one_block_per_stage(cfg.model.backbone)
        fewer_samples(cfg.model)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return revert_sync_batchnorm(model), cfg


def test_all_expected_configs_exist():
    names = {osp.basename(p) for p in DET_CONFIGS}
    for size in 'tsb':
        for schedule in ('1x', '3x'):
            assert f'smt_{size}_maskrcnn_{schedule}.py' in names
    for family in ('cascade-maskrcnn', 'retinanet', 'atss', 'sparse-rcnn'):
        assert f'smt_s_{family}_3x.py' in names


@pytest.mark.parametrize('path', DET_CONFIGS, ids=osp.basename)
def test_config_builds_and_trains_one_step(path):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    model, cfg = build_detector(path, shallow=True)
    assert type(model.backbone).__name__ == 'SMT'
    model.train()
    num_classes = 3 if 'synth' in path else 80
    packed = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 96, 128), (3, 128, 96)],
        num_items=[2, 3],
        num_classes=num_classes,
        with_mask='mask' in osp.basename(path))
    data = model.data_preprocessor(packed, True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss)
    loss.backward()
    stem = model.backbone.stages[0].patch_embed.stem.conv.weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0


def test_mask_rcnn_smt_b_size():
    model, _ = build_detector(
        osp.join(REPO, 'configs/det/smt_b_maskrcnn_3x.py'))
    params = sum(p.numel() for p in model.parameters())
    # Official README: 52M; measured on the official code: about 51.7M.
    assert abs(params / 1e6 - 51.7) < 0.1, params


def test_no_sgd_momentum_in_adamw_configs():
    for path in DET_CONFIGS:
        optimizer = Config.fromfile(path).optim_wrapper.optimizer
        assert optimizer.type == 'AdamW', path
        assert 'momentum' not in optimizer, path
