# Copyright (c) SMT-MM contributors. All rights reserved.
"""Through the tools: an official release file evaluates as the official
model; config text in a checkpoint never runs on resume; earlier results
are never overwritten without --overwrite; checkpoints keep the umask and a
damaged one is skipped on resume."""
import os
import os.path as osp
import pickle
import shutil
import sys

import pytest
import torch
from helpers import (run_tool, tool_error, write_fixture_cls_config,
                     write_tiny_det_config)
from mmengine.config import Config

PY = sys.executable
SITE = osp.dirname(osp.dirname(torch.__file__))
# real photos that ship with matplotlib and scikit-learn
PHOTOS = [
    osp.join(SITE, 'matplotlib/mpl-data/sample_data/grace_hopper.jpg'),
    osp.join(SITE, 'sklearn/datasets/images/china.jpg'),
    osp.join(SITE, 'sklearn/datasets/images/flower.jpg'),
]


def imagenet_folder(root):
    """An ImageNet-format val split (val/*.jpg + meta/val.txt)."""
    os.makedirs(osp.join(root, 'val'))
    os.makedirs(osp.join(root, 'meta'))
    lines = []
    for i, photo in enumerate(PHOTOS):
        shutil.copy(photo, osp.join(root, 'val', f'photo{i}.jpg'))
        lines.append(f'photo{i}.jpg {i}')
    with open(osp.join(root, 'meta', 'val.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def official_logits(official_file, arch, release, cfg):
    """The official code's logits on the config's test inputs."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS, MODELS

    from smt_mm.benchmark.official import load_official_module
    module = load_official_module(official_file)
    model = module.SMT(**arch)
    model.load_state_dict(release['model'])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        # the runner gives the model the config's top-level preprocessor
        preprocessor = MODELS.build(
            dict(type='ClsDataPreprocessor', **cfg.data_preprocessor))
    batch = preprocessor(
        dict(
            inputs=[dataset[i]['inputs'] for i in range(len(dataset))],
            data_samples=[
                dataset[i]['data_samples'] for i in range(len(dataset))
            ]))
    with torch.no_grad():
        return model.eval()(batch['inputs'])


@pytest.mark.skipif(
    not all(map(osp.isfile, PHOTOS)), reason='sample photos not installed')
def test_release_file_evaluates_as_the_official_model(tmp_path, fixtures_dir,
                                                      official_file):
    """tools/test.py configs/cls/smt_t_in1k.py <official release file>, no
    conversion step, on real photos in ImageNet format."""
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = dict(expected['arch'])
    num_classes = arch.pop('num_classes')
    release_file = osp.join(fixtures_dir, 'smt_tiny_official.pth')
    root = str(tmp_path / 'imagenet')
    imagenet_folder(root)
    config = write_fixture_cls_config(
        tmp_path / 'eval.py', arch, num_classes, root, batch_size=3)
    out = tmp_path / 'predictions.pkl'
    run_tool([
        PY, 'tools/test.py',
        str(config), release_file, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out)
    ])
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    scores = torch.stack([p['pred_score'] for p in predictions])
    cfg = Config.fromfile(str(config))
    release = torch.load(release_file)
    reference = official_logits(official_file, dict(expected['arch']), release,
                                cfg).softmax(-1)
    assert scores.shape == (3, num_classes)
    assert (scores - reference).abs().max().item() <= 1e-6


def one_line_error(args, contains):
    proc = run_tool([PY, *args], check=False, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and contains in last, last
    return last


def test_earlier_results_are_not_overwritten(tmp_path):
    config = write_tiny_det_config(tmp_path / 'data', num_train=2)
    work = tmp_path / 'work'
    work.mkdir()
    old = work / 'epoch_1.pth'
    old.write_bytes(b'an earlier run')
    one_line_error(['tools/train.py', config, '--work-dir',
                    str(work)], 'pass --resume to continue it, --overwrite')
    # the same gate in process: the messages of the other tools
    assert 'is an input of this run' in tool_error(
        'tools/test.py',
        [config, old, '--out', old, '--work-dir', tmp_path / 't'])
    existing = tmp_path / 'results.pkl'
    existing.write_bytes(b'earlier results')
    assert 'exists; pass --overwrite' in tool_error(
        'tools/test.py',
        [config, old, '--out', existing, '--work-dir', tmp_path / 't'])
    assert 'is not empty' in tool_error('tools/misc/make_synthetic_data.py',
                                        ['coco', tmp_path / 'data'])
    assert old.read_bytes() == b'an earlier run'
    assert existing.read_bytes() == b'earlier results'


@pytest.mark.slow
def test_resume_runs_no_config_text_keeps_umask_skips_damage(tmp_path):
    from mmengine.config import Config as MMConfig
    marker = tmp_path / 'pwned'
    payload = f'open({str(marker)!r}, "w").close()\n'
    # control: the payload does run when mmengine parses it
    MMConfig.fromstring(payload, file_format='.py')
    assert marker.exists()
    marker.unlink()

    config = write_tiny_det_config(
        tmp_path / 'data', num_train=2, batch_size=2, max_epochs=2)
    work = tmp_path / 'work'
    old = os.umask(0o022)
    try:
        run_tool([PY, 'tools/train.py', config, '--work-dir', str(work)])
    finally:
        os.umask(old)
    assert (work / 'epoch_2.pth').stat().st_mode & 0o777 == 0o644
    # epoch_2 carries the config text mmengine's resume would execute, and
    # is then damaged inside; an interrupted save left a temporary file
    ckpt = torch.load(work / 'epoch_2.pth', weights_only=False)
    ckpt['meta']['config'] = payload
    ckpt['meta']['cfg'] = payload
    torch.save(ckpt, work / 'epoch_2.pth')
    crafted = work / 'crafted.pth'
    shutil.copy(work / 'epoch_2.pth', crafted)
    stale = work / '.epoch_3.pth.0123456789ab.tmp'
    stale.write_bytes(b'partial')
    options = ['--cfg-options', 'train_cfg.max_epochs=3']
    proc = run_tool([
        PY, 'tools/train.py', config, '--work-dir',
        str(work), '--resume',
        str(crafted), *options
    ])
    assert 'resumed epoch: 2' in proc.stdout + proc.stderr
    assert not marker.exists() and not stale.exists()

    data = bytearray((work / 'epoch_3.pth').read_bytes())
    start = data.find(b'data/0') + 200
    data[start:start + 64] = b'\xff' * 64
    (work / 'epoch_3.pth').write_bytes(bytes(data))
    options = ['--cfg-options', 'train_cfg.max_epochs=4']
    proc = run_tool([
        PY, 'tools/train.py', config, '--work-dir',
        str(work), '--resume', *options
    ])
    log = proc.stdout + proc.stderr
    assert 'epoch_3.pth is damaged' in log and 'resuming from' in log
    assert (work / 'epoch_4.pth').is_file() and not marker.exists()
