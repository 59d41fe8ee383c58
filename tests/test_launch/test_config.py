# Copyright (c) SMT-MM contributors. All rights reserved.
"""``load_config`` checks what every tool reads: typos in model types and
SMT arguments, missing ``_base_`` files, failing ``custom_imports`` and
unwritable output paths are one clear error, not a traceback."""
import glob
import os
import os.path as osp

import pytest
from helpers import MINI_ARCH, QUICKSTART, REPO

from smt_mm.errors import LaunchError, SMTConfigError, SMTConfigTypeError
from smt_mm.launch.config import (add_result_dump, check_writable_dir,
                                  load_config, set_work_dir)

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick

SEG = osp.join(REPO, 'configs/seg/smt_t_upernet_synth.py')
CLS = osp.join(REPO, 'configs/cls/smt_t_digits.py')


@pytest.mark.parametrize('config,key,typo,suggestion', [
    (QUICKSTART, 'model.backbone.type', 'SMTT', "'SMT'"),
    (QUICKSTART, 'model.backbone.type', 'smt', "'SMT'"),
    (QUICKSTART, 'model.neck.type', 'FPNN', "'FPN'"),
    (QUICKSTART, 'model.roi_head.bbox_head.type', 'Shared2FCBoxHead',
     "'Shared2FCBBoxHead'"),
    (QUICKSTART, 'model.train_cfg.rcnn.assigner.type', 'MaxIouAssigner',
     "'MaxIoUAssigner'"),
    (SEG, 'model.decode_head.type', 'UPerHaed', "'UPerHead'"),
    (CLS, 'model.head.type', 'LinearClsHaed', "'LinearClsHead'"),
])
def test_type_typo_names_key_and_close_match(config, key, typo, suggestion):
    with pytest.raises(LaunchError) as err:
        load_config(config, {key: typo})
    message = str(err.value)
    path = key[:-len('.type')]
    assert message.startswith(f'{path}: unknown type {typo!r} (did you '
                              f'mean {suggestion}')
    assert 'custom_imports' in message


def test_smt_argument_typo_names_close_match(tmp_path):
    # in a config file: the same typo in --cfg-options is refused earlier
    # (tests/test_launch/test_cfg_options.py)
    config = tmp_path / 'typo.py'
    config.write_text(f'_base_ = [{QUICKSTART!r}]\n'
                      "model = dict(backbone=dict(archh='tiny'))\n")
    with pytest.raises(SMTConfigTypeError) as err:
        load_config(str(config))
    assert str(err.value).startswith(
        "model.backbone: SMT: unknown argument 'archh' (did you mean "
        "'arch'?); valid arguments are arch, in_channels")


@pytest.mark.parametrize('key,value,fragment', [
    ('model.backbone.drop_path_rate', 1.5,
     'drop_path_rate=1.5 is out of range; valid values are in [0, 1)'),
    ('model.backbone.out_indices', [], 'out_indices is empty'),
    ('model.backbone.arch', dict(
        MINI_ARCH, _delete_=True, depths=[1, 0, 1, 1]),
     "arch['depths'][1] must be a positive int, got 0"),
])
def test_smt_values_are_checked_before_building(key, value, fragment):
    with pytest.raises(SMTConfigError) as err:
        load_config(CLS, {key: value})
    assert str(err.value).startswith('model.backbone: SMT: ')
    assert fragment in str(err.value)


def test_segmentor_pretrained_is_checked_as_the_backbones():
    """mmseg hands model.pretrained to the backbone: checked as SMT's."""
    with pytest.raises(SMTConfigTypeError, match='^model.pretrained: SMT: '):
        load_config(SEG, {'model.pretrained': 5})
    with pytest.raises(LaunchError, match='both set'):
        load_config(SEG, {
            'model.pretrained': 'a.pth',
            'model.backbone.pretrained': 'b.pth'
        })
    assert load_config(SEG, {'model.pretrained': 'a.pth'}).model.pretrained


def test_check_can_be_skipped():
    cfg = load_config(QUICKSTART, {'model.backbone.type': 'SMTT'}, check=False)
    assert cfg.model.backbone.type == 'SMTT'


@pytest.mark.parametrize(
    'config',
    sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py'))),
    ids=lambda p: osp.relpath(p, osp.join(REPO, 'configs')))
def test_every_repository_config_passes(config):
    # RoI layers and NMS types (mmcv.ops names), task utils, initialisers
    # and batch augments are no MODELS types but must pass
    load_config(config)


def test_cross_scope_type_passes():
    load_config(
        QUICKSTART, {
            'model.backbone':
            dict(_delete_=True, type='mmpretrain.ConvNeXt', arch='atto')
        })


REGISTERING_MODULE = '''
import torch.nn as nn
from mmdet.registry import MODELS


@MODELS.register_module()
class {name}(nn.Identity):
    pass
'''


def write_module(folder, module, name):
    (folder / f'{module}.py').write_text(REGISTERING_MODULE.format(name=name))


def test_types_of_custom_imports_pass(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, 'smt_test_neck_a', 'SMTTestNeckA')
    config = tmp_path / 'custom.py'
    config.write_text(
        f'_base_ = [{QUICKSTART!r}]\n'
        "custom_imports = dict(imports=['smt_test_neck_a'])\n"
        "model = dict(neck=dict(_delete_=True, type='SMTTestNeckA'))\n")
    assert load_config(str(config)).model.neck.type == 'SMTTestNeckA'


def test_custom_imports_from_cfg_options_are_imported(tmp_path, monkeypatch):
    # mmengine imports a file's custom_imports only; ones added on the
    # command line must be imported before the check looks the types up
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, 'smt_test_neck_b', 'SMTTestNeckB')
    options = {'model.neck': dict(_delete_=True, type='SMTTestNeckB')}
    with pytest.raises(LaunchError, match="unknown type 'SMTTestNeckB'"):
        load_config(QUICKSTART, options)
    options['custom_imports'] = dict(imports=['smt_test_neck_b'])
    load_config(QUICKSTART, options)


def test_failing_custom_imports_are_one_line(tmp_path):
    config = tmp_path / 'custom.py'
    config.write_text(
        f'_base_ = [{QUICKSTART!r}]\n'
        "custom_imports = dict(imports=['no_such_module_xyz'])\n")
    with pytest.raises(LaunchError) as err:
        load_config(str(config))
    message = str(err.value)
    assert 'custom_imports failed' in message
    assert "No module named 'no_such_module_xyz'" in message
    assert '\n' not in message


def test_base_typo_names_missing_file_and_similar_ones(tmp_path):
    (tmp_path / 'base_schedule.py').write_text('x = 1\n')
    config = tmp_path / 'child.py'
    config.write_text("_base_ = ['./base_schedul.py']\ny = 2\n")
    with pytest.raises(LaunchError) as err:
        load_config(str(config))
    assert str(err.value) == (
        f'cannot read config {config}: _base_ file '
        f'{tmp_path / "base_schedul.py"} does not exist (similar files '
        'there: base_schedule.py)')


def test_base_typo_in_missing_folder(tmp_path):
    config = tmp_path / 'child.py'
    config.write_text("_base_ = ['./_bsae_/schedule.py']\n")
    with pytest.raises(LaunchError) as err:
        load_config(str(config))
    assert f'{tmp_path / "_bsae_"} does not exist either' in str(err.value)


def test_base_chain_that_cannot_be_read_is_one_line(tmp_path):
    from helpers import deadline
    (tmp_path / 'a.py').write_text("_base_ = ['./b.py']\n")
    (tmp_path / 'b.py').write_text("_base_ = ['./a.py']\n")
    (tmp_path / 'txt.py').write_text("_base_ = ['./notes.txt']\n")
    (tmp_path / 'notes.txt').write_text('my notes\n')
    (tmp_path / 'fifo.py').write_text("_base_ = ['./pipe.py']\n")
    os.mkfifo(tmp_path / 'pipe.py')
    os.mkfifo(tmp_path / 'self.py')
    expected = {
        'a.py':
        f'{tmp_path}/b.py inherits {tmp_path}/a.py, which inherits '
        'it: remove the loop from the _base_ chain',
        'txt.py':
        'a _base_ file is not a config (Only py/yml/yaml/json '
        'type are supported now!); name .py, .yml or .json configs',
        'fifo.py':
        f'_base_ {tmp_path}/pipe.py is a FIFO (named pipe), not a '
        'config file',
    }
    for name, end in expected.items():
        with deadline(20), pytest.raises(LaunchError) as err:
            load_config(str(tmp_path / name))
        assert str(err.value) == f'cannot read config {tmp_path / name}: ' \
            + end
    with deadline(20), pytest.raises(LaunchError) as err:
        load_config(str(tmp_path / 'self.py'))
    assert str(err.value) == (f'config {tmp_path / "self.py"} is a FIFO '
                              '(named pipe), not a config file')


def test_package_base_typo(tmp_path):
    import smt_mm  # noqa: F401  (registers smt_mm::)
    config = tmp_path / 'child.py'
    config.write_text("_base_ = ['smt_mm::det/smt_t_maskrcnn_1xx.py']\n")
    with pytest.raises(LaunchError) as err:
        load_config(str(config))
    message = str(err.value)
    assert 'smt_t_maskrcnn_1xx.py does not exist' in message
    assert 'smt_t_maskrcnn_1x.py' in message.split('similar files there')[1]


# ---------------------------------------------------------------------------
# Output paths
# ---------------------------------------------------------------------------
def test_work_dir_that_is_a_file(tmp_path):
    cfg = load_config(QUICKSTART)
    path = tmp_path / 'work'
    path.write_text('')
    with pytest.raises(LaunchError, match='is a file, not a folder'):
        set_work_dir(cfg, QUICKSTART, str(path))


def test_work_dir_under_a_file(tmp_path):
    cfg = load_config(QUICKSTART)
    (tmp_path / 'file').write_text('')
    with pytest.raises(LaunchError) as err:
        set_work_dir(cfg, QUICKSTART, str(tmp_path / 'file' / 'work'))
    assert f'cannot be created: {tmp_path / "file"} is a file' in \
        str(err.value)


def test_work_dir_in_read_only_folder(tmp_path, monkeypatch):
    cfg = load_config(QUICKSTART)
    read_only = tmp_path / 'ro'
    read_only.mkdir()
    real_access = os.access
    # a read-only mount (or missing permission) as os.access reports it
    monkeypatch.setattr(
        os, 'access', lambda path, mode: False
        if str(path) == str(read_only) else real_access(path, mode))
    with pytest.raises(LaunchError) as err:
        set_work_dir(cfg, QUICKSTART, str(read_only / 'a' / 'b'))
    assert f'is not writable: no write permission in {read_only}' in \
        str(err.value)


@pytest.mark.skipif(
    hasattr(os, 'geteuid') and os.geteuid() == 0,
    reason='root writes into read-only folders')
def test_work_dir_in_folder_without_permission(tmp_path):
    read_only = tmp_path / 'ro'
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        with pytest.raises(LaunchError, match='is not writable'):
            check_writable_dir(str(read_only / 'work'), 'work dir')
    finally:
        read_only.chmod(0o755)


def test_writable_work_dir_passes_and_is_not_created(tmp_path):
    cfg = load_config(QUICKSTART)
    set_work_dir(cfg, QUICKSTART, str(tmp_path / 'new' / 'work'))
    assert cfg.work_dir == str(tmp_path / 'new' / 'work')
    assert not (tmp_path / 'new').exists()


def test_result_dump_under_a_file(tmp_path):
    cfg = load_config(QUICKSTART)
    (tmp_path / 'file').write_text('')
    with pytest.raises(LaunchError, match='is a file'):
        add_result_dump(cfg, 'mmdet', str(tmp_path / 'file' / 'out.pkl'))
