# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMTRunner loads official release files into SMT classifiers exactly,
refuses checkpoints that do not fit (keys, shapes, NaN) with one line unless
``load_strict=False``, and writes checkpoints with the user's umask."""
import os
import os.path as osp

import pytest
import torch
from helpers import MINI_ARCH
from mmengine.config import Config
from mmengine.logging import MMLogger

from smt_mm.checkpoint import AtomicLocalBackend, remove_stale_temporaries
from smt_mm.engine import SMTRunner
from smt_mm.errors import (CheckpointLoadError, CheckpointMismatchError,
                           CorruptCheckpointError)
from smt_mm.models import SMT
from smt_mm.models.utils import model_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def fixture_arch(fixtures_dir):
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = dict(expected['arch'])
    return arch, arch.pop('num_classes'), expected


def classifier_runner(tmp_path, arch, num_classes, **cfg_options):
    cfg = Config.fromfile(osp.join(REPO, 'configs/cls/smt_t_in1k.py'))
    cfg.model.backbone.arch = arch
    cfg.model.head.update(
        num_classes=num_classes, in_channels=arch['embed_dims'][-1])
    cfg.model.data_preprocessor = dict(num_classes=num_classes)
    cfg.merge_from_dict(cfg_options)
    runner = SMTRunner(
        model=cfg.model,
        work_dir=str(tmp_path / 'work'),
        default_scope='mmpretrain',
        cfg=cfg)
    return runner


def logits(runner, inputs):
    with torch.no_grad():
        return runner.model.eval()(inputs, mode='tensor')


def test_release_file_gives_the_official_classifier(fixtures_dir, tmp_path):
    arch, num_classes, expected = fixture_arch(fixtures_dir)
    runner = classifier_runner(tmp_path, arch, num_classes)
    runner.load_checkpoint(osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    for case in expected['cases']:
        diff = (logits(runner, case['input']) - case['logits']).abs().max()
        assert diff.item() <= 1e-5


def test_release_file_through_get_model(fixtures_dir):
    """mmpretrain's get_model goes through mmengine's own loader: the
    SMTClassifier of configs/cls unpacks the release file."""
    from mmpretrain.apis import get_model
    arch, num_classes, expected = fixture_arch(fixtures_dir)
    cfg = Config.fromfile(osp.join(REPO, 'configs/cls/smt_t_in1k.py'))
    cfg.model.backbone.arch = arch
    cfg.model.head.update(
        num_classes=num_classes, in_channels=arch['embed_dims'][-1])
    model = get_model(
        cfg, pretrained=osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    case = expected['cases'][0]
    with torch.no_grad():
        out = model.eval()(case['input'], mode='tensor')
    assert (out - case['logits']).abs().max().item() <= 1e-5


def test_release_file_for_a_detector_says_use_init_cfg(fixtures_dir):
    official = torch.load(osp.join(fixtures_dir, 'smt_tiny_official.pth'))
    detector = torch.nn.Module()  # an SMT backbone without a linear head
    detector.backbone = SMT(dict(MINI_ARCH, depths=[1, 1, 1, 1]))
    with pytest.raises(CheckpointMismatchError) as err:
        model_state_dict(detector, official, 'smt_tiny.pth')
    message = str(err.value)
    assert 'model.backbone.init_cfg' in message and '\n' not in message


def save_classifier(runner, path, **changes):
    state_dict = runner.model.state_dict()
    state_dict.update(changes)
    torch.save({'state_dict': state_dict, 'meta': {}}, path)


def test_mismatching_checkpoints_stop_with_one_line(fixtures_dir, tmp_path):
    arch, num_classes, _ = fixture_arch(fixtures_dir)
    runner = classifier_runner(tmp_path, arch, num_classes)
    path = str(tmp_path / 'other.pth')
    # another head width and an extra key
    save_classifier(
        runner, path, **{
            'head.fc.weight': torch.zeros(3, arch['embed_dims'][-1]),
            'extra.weight': torch.zeros(1)
        })
    with pytest.raises(CheckpointMismatchError) as err:
        runner.load_checkpoint(path)
    message = str(err.value)
    assert path in message and 'head.fc.weight (file (3,' in message
    assert '1 unexpected: extra.weight' in message
    assert 'load_strict=False' in message and '\n' not in message
    # NaN weights
    weight = runner.model.state_dict()['head.fc.weight']
    save_classifier(
        runner, path,
        **{'head.fc.weight': torch.full_like(weight, float('nan'))})
    with pytest.raises(CheckpointLoadError, match='NaN .* head.fc.weight'):
        runner.load_checkpoint(path)


def test_partial_load_is_an_explicit_opt_out(fixtures_dir, tmp_path):
    arch, num_classes, _ = fixture_arch(fixtures_dir)
    source = classifier_runner(tmp_path, arch, num_classes)
    path = str(tmp_path / 'finetune.pth')
    width = arch['embed_dims'][-1]
    save_classifier(
        source, path, **{
            'head.fc.weight': torch.zeros(3, width),
            'head.fc.bias': torch.zeros(3)
        })
    partial = classifier_runner(tmp_path, arch, num_classes, load_strict=False)
    head_before = partial.model.head.fc.weight.clone()
    logs = []
    MMLogger.get_current_instance().addFilter(
        lambda rec: logs.append(rec.getMessage()) or True)
    partial.load_checkpoint(path)
    assert any('skipped: 2 shape mismatch: head.fc.weight' in m
               for m in logs), logs
    assert torch.equal(partial.model.head.fc.weight, head_before)
    for key, value in source.model.backbone.state_dict().items():
        assert torch.equal(partial.model.backbone.state_dict()[key], value)


def test_resume_falls_back_past_a_damaged_checkpoint(tmp_path):
    from smt_mm.engine.runner import _newest_intact_checkpoint
    older, newer = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    for path in (older, newer):
        torch.save({'state_dict': {'w': torch.arange(4096.)}}, path)
    data = bytearray(newer.read_bytes())
    start = data.find(b'data/0') + 200  # inside the tensor record
    data[start:start + 64] = b'\xff' * 64  # zip directory stays intact
    newer.write_bytes(bytes(data))
    os.utime(newer, (older.stat().st_mtime + 10, ) * 2)
    from smt_mm.engine.runner import _check_intact
    with pytest.raises(CorruptCheckpointError, match='iter_4.pth'):
        _check_intact(str(newer))
    _check_intact(str(older))
    assert _newest_intact_checkpoint(str(newer)) == str(older)


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoints_keep_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        AtomicLocalBackend().put(b'weights', tmp_path / 'epoch_1.pth')
    finally:
        os.umask(old)
    assert (tmp_path / 'epoch_1.pth').stat().st_mode & 0o777 == mode


def test_stale_temporaries_are_removed(tmp_path):
    stale = tmp_path / '.epoch_3.pth.0123456789ab.tmp'
    stale.write_bytes(b'partial')
    keep = [tmp_path / 'epoch_2.pth', tmp_path / '.notes.tmp']
    for path in keep:
        path.write_bytes(b'x')
    assert remove_stale_temporaries(str(tmp_path)) == [str(stale)]
    assert all(p.exists() for p in keep) and not stale.exists()


def test_tta_wrapper_loads_into_the_model_it_wraps():
    """tools/test.py --tta wraps the model; its checkpoint has no
    ``module.`` keys."""
    from mmengine.model import BaseModel
    from mmseg.models import SegTTAModel

    from smt_mm.models.utils import apply_checkpoint

    class Segmentor(BaseModel):  # the least a TTA wrapper accepts

        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(2, 2)

        def forward(self, *args, **kwargs):
            pass

    inner = Segmentor()
    source = {k: torch.ones_like(v) for k, v in inner.state_dict().items()}
    apply_checkpoint(
        SegTTAModel(module=inner), {'state_dict': source}, 'seg.pth')
    assert torch.equal(inner.head.weight, torch.ones(2, 2))


def test_runners_built_in_the_same_second_log_into_their_own_folders(
        tmp_path, monkeypatch):
    # mmengine names a run's logger after the config and the second: two
    # runners of one config built within a second must still log apart
    import mmengine.runner.runner as mmengine_runner
    monkeypatch.setattr(mmengine_runner.time, 'strftime',
                        lambda *args: '20260101_000000')
    logs = {}
    for name in ('first', 'second'):
        runner = classifier_runner(tmp_path / name, MINI_ARCH, 10)
        runner.logger.info(f'marker of the {name} run')
        logs[name] = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    assert osp.dirname(logs['first']) != osp.dirname(logs['second'])
    for name, path in logs.items():
        with open(path) as f:
            text = f.read()
        other = 'second' if name == 'first' else 'first'
        assert f'marker of the {name} run' in text
        assert f'marker of the {other} run' not in text
