"""Classification: configs, official-file conversion with logit parity,
evaluation through tools/test.py, backbone reuse downstream."""
import glob
import json
import os.path as osp
import sys

import pytest
import torch
from helpers import (REPO, one_block_per_stage, run_tool, to_official_key,
                     tool_error, write_fixture_cls_config)
from mmengine.config import Config
from mmengine.registry import DefaultScope

from smt_mm.checkpoint import read_checkpoint
from smt_mm.datasets.digits import make_digits_dataset
from smt_mm.errors import CheckpointMismatchError
from smt_mm.models import SMT
from smt_mm.models.utils import convert_official_checkpoint

CLS_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs/cls/smt_*.py')))
PY = sys.executable


def build_classifier(model_cfg):
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(model_cfg)


def fixture_arch(fixtures_dir):
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = dict(expected['arch'])
    return arch, arch.pop('num_classes'), expected


def fixture_classifier_cfg(arch, num_classes):
    cfg = Config.fromfile(osp.join(REPO, 'configs/cls/smt_t_in1k.py'))
    cfg.model.backbone.arch = arch
    cfg.model.head.update(
        num_classes=num_classes, in_channels=arch['embed_dims'][-1])
    return cfg


@pytest.mark.parametrize('path', CLS_CONFIGS, ids=osp.basename)
def test_config_builds_and_trains_one_step(path):
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    one_block_per_stage(cfg.model.backbone)
    model = build_classifier(cfg.model)
    model.init_weights()
    num_classes = cfg.model.head.num_classes
    samples = [DataSample().set_gt_label(i) for i in range(2)]
    if cfg.model.get('train_cfg'):  # batch augments want one-hot scores
        for sample in samples:
            sample.set_gt_score(torch.eye(num_classes)[sample.gt_label[0]])
    inputs = torch.rand(2, 3, 64, 64)
    losses = model.loss(inputs, samples)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert model.head.fc.weight.grad is not None
    with torch.no_grad():
        assert model.eval()(inputs, mode='tensor').shape == (2, num_classes)


@pytest.mark.parametrize('variant,arch,drop_path,width',
                         [('t', 'tiny', 0.1, 512), ('s', 'small', 0.2, 512),
                          ('b', 'base', 0.3, 512), ('l', 'large', 0.4, 768)])
def test_in1k_configs_follow_the_official_recipe(variant, arch, drop_path,
                                                 width):
    cfg = Config.fromfile(osp.join(REPO, f'configs/cls/smt_{variant}_in1k.py'))
    assert cfg.model.backbone.arch == arch
    assert cfg.model.backbone.drop_path_rate == drop_path
    assert cfg.model.head.in_channels == width
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert [(a.type, a.alpha)
            for a in cfg.model.train_cfg.augments] == [('Mixup', 0.2),
                                                       ('CutMix', 1.0)]
    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW'
    assert optim.optimizer.lr == pytest.approx(1e-3 * 1024 / 512)
    assert (optim.optimizer.weight_decay, optim.optimizer.eps,
            optim.optimizer.betas) == (0.05, 1e-8, (0.9, 0.999))
    assert optim.paramwise_cfg == dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0)
    assert optim.clip_grad.max_norm == 5.0
    warmup, cosine = cfg.param_scheduler
    assert (warmup.end, warmup.start_factor *
            optim.optimizer.lr) == (5, pytest.approx(1e-7 * 2))
    assert cosine.eta_min_ratio * optim.optimizer.lr == pytest.approx(1e-6 * 2)
    assert cfg.train_cfg.max_epochs == 300 and cosine.end == 300
    assert cfg.train_dataloader.batch_size * 8 == 1024
    assert cfg.auto_scale_lr.base_batch_size == 1024
    types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert types == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
        'RandomErasing', 'PackInputs'
    ]
    test_types = [(t.type, t.get('scale', t.get('crop_size')))
                  for t in cfg.test_dataloader.dataset.pipeline]
    assert test_types[1:3] == [('ResizeEdge', 256), ('CenterCrop', 224)]


def test_converted_official_file_gives_official_logits(fixtures_dir):
    arch, num_classes, expected = fixture_arch(fixtures_dir)
    official = torch.load(osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    state_dict, meta = convert_official_checkpoint(official, arch)
    assert meta['num_classes'] == num_classes
    model = build_classifier(fixture_classifier_cfg(arch, num_classes).model)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    for case in expected['cases']:
        with torch.no_grad():
            logits = model(case['input'], mode='tensor')
        assert (logits - case['logits']).abs().max().item() <= 1e-5


def test_conversion_finds_presets_and_refuses_other_archs(fixtures_dir):
    official = torch.load(osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    with pytest.raises(
            CheckpointMismatchError,
            match=r'embed_dims \[16, 32, 64, 128\].*'
            r'stem\.conv\.weight \(file \(16, 3, 3, 3\), '
            r'model \(64, 3, 3, 3\)\)'):
        convert_official_checkpoint(official, 'tiny')
    # a preset is recognised without naming it
    model = SMT('tiny')
    fake = {
        'model': {
            **{
                k: v
                for k, v in official['model'].items() if k.startswith('head')
            }
        }
    }
    fake['model'] = {
        to_official_key(k): v
        for k, v in model.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    fake['model']['head.weight'] = torch.zeros(21841, 512)
    fake['model']['head.bias'] = torch.arange(21841.)
    rows = [5, 0, 21840]
    state_dict, meta = convert_official_checkpoint(fake, head_rows=rows)
    assert meta == dict(arch='tiny', num_classes=3)
    assert state_dict['head.fc.bias'].tolist() == [5., 0., 21840.]


def test_convert_tool_writes_refuses_and_never_overwrites(
        fixtures_dir, tmp_path):
    src = osp.join(fixtures_dir, 'smt_tiny_official.pth')
    arch, _, _ = fixture_arch(fixtures_dir)
    dst = tmp_path / 'converted.pth'
    tool = [PY, 'tools/convert_official.py', src, str(dst)]
    run_tool([*tool, '--arch', json.dumps(arch)])
    saved = torch.load(dst)
    assert saved['meta']['num_classes'] == 10
    assert 'head.fc.weight' in saved['state_dict']
    before = dst.read_bytes()
    convert = 'tools/convert_official.py'
    for extra, message in [
        (['--arch', json.dumps(arch)], 'exists; pass --overwrite'),
        (['--arch', 'base', '--overwrite'], 'does not match SMT arch'),
        (['--config', 'configs/cls/smt_b_in1k.py',
          '--overwrite'], 'does not match SMT arch'),
    ]:
        assert message in tool_error(convert, [src, dst, *extra])
    assert dst.read_bytes() == before  # the earlier result is untouched
    assert 'is an input of this run' in tool_error(convert, [src, src])


def test_test_tool_evaluates_a_converted_file_on_an_imagenet_folder(
        fixtures_dir, tmp_path):
    arch, num_classes, _ = fixture_arch(fixtures_dir)
    data_root = tmp_path / 'imagenet'
    make_digits_dataset(str(data_root), limit=16)
    ckpt = tmp_path / 'converted.pth'
    run_tool([
        PY, 'tools/convert_official.py',
        osp.join(fixtures_dir, 'smt_tiny_official.pth'),
        str(ckpt), '--arch',
        json.dumps(arch)
    ])
    config = write_fixture_cls_config(tmp_path / 'eval.py', arch, num_classes,
                                      data_root)
    metrics = tmp_path / 'metrics.json'
    run_tool([
        PY, 'tools/test.py',
        str(config),
        str(ckpt), '--work-dir',
        str(tmp_path / 'work'), '--metrics-out',
        str(metrics)
    ])
    result = json.loads(metrics.read_text())
    # random-looking weights on digits: a valid percentage, not a good one
    assert 0 <= result['accuracy/top1'] <= 100
    assert result['accuracy/top5'] >= result['accuracy/top1']


def test_detection_backbone_starts_from_a_converted_file(
        fixtures_dir, tmp_path):
    arch, _, expected = fixture_arch(fixtures_dir)
    official = torch.load(osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    state_dict, _ = convert_official_checkpoint(official, arch)
    path = tmp_path / 'cls.pth'
    torch.save(dict(state_dict=state_dict, meta={}), path)
    model = SMT(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    with torch.no_grad():
        outs = model.eval()(expected['cases'][0]['input'])
    for out, ref in zip(outs, expected['cases'][0]['stages']):
        assert (out - ref).abs().max().item() <= 1e-5


@pytest.mark.slow
def test_digits_run_end_to_end_and_its_backbone_serves_detection(tmp_path):
    """Shortened digits run (4 of 30 epochs) through tools/train.py, its
    checkpoint re-evaluated by tools/test.py and loaded by a detector's
    backbone. The full run reaches 99.4% (README)."""
    data_root = tmp_path / 'digits'
    make_digits_dataset(str(data_root))
    work = tmp_path / 'work'
    options = [
        '--cfg-options', f'data_root={data_root}/',
        f'train_dataloader.dataset.data_root={data_root}/',
        f'val_dataloader.dataset.data_root={data_root}/',
        f'test_dataloader.dataset.data_root={data_root}/',
        'train_cfg.max_epochs=4', 'train_cfg.val_interval=4',
        'default_hooks.checkpoint.interval=4'
    ]
    run_tool([
        PY, 'tools/train.py', 'configs/cls/smt_t_digits.py', '--work-dir',
        str(work), *options
    ])
    checkpoint = work / 'epoch_4.pth'
    metrics = tmp_path / 'metrics.json'
    run_tool([
        PY, 'tools/test.py', 'configs/cls/smt_t_digits.py',
        str(checkpoint), '--work-dir',
        str(tmp_path / 'test'), '--metrics-out',
        str(metrics), *options
    ])
    top1 = json.loads(metrics.read_text())['accuracy/top1']
    assert top1 >= 90.0, top1

    trained = read_checkpoint(str(checkpoint))['state_dict']
    detector_backbone = SMT(
        'tiny', init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    detector_backbone.init_weights()
    for key, value in detector_backbone.state_dict().items():
        assert torch.equal(value, trained[f'backbone.{key}']), key
