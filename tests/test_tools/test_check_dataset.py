"""tools/misc/check_dataset.py on the synthetic COCO and ADE20K data: passes
when the data is there, names what is missing otherwise."""
import os
import sys

import pytest
from helpers import run_tool

DET = 'configs/det/smt_t_maskrcnn_synth-quickstart.py'
SEG = 'configs/seg/smt_t_upernet_synth.py'
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    for kind in ('coco', 'ade'):
        run_tool([
            sys.executable, 'tools/misc/make_synthetic_data.py', kind,
            str(root / kind), '--num-train', '6', '--num-val', '3'
        ])
    return root


def roots(path):
    return [f'{loader}.dataset.data_root={path}' for loader in LOADERS]


def check(config, *args):
    return run_tool(
        [sys.executable, 'tools/misc/check_dataset.py', config, *args],
        check=False)


@pytest.mark.parametrize('config,kind,images,annotations',
                         [(DET, 'coco', 6, None), (SEG, 'ade', 6, 6)])
def test_complete_data_passes(data, config, kind, images, annotations):
    proc = check(config, '--cfg-options', *roots(f'{data / kind}/'))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert '[train] ' in out and f': {images} images' in out
    assert '[val] ' in out and '[test] ' in out
    if annotations is not None:
        assert f'{annotations} annotations' in out
    assert 'dataset check passed' in out


def test_missing_root_fails_naming_it(tmp_path):
    missing = tmp_path / 'nowhere'
    proc = check(SEG, '--split', 'train', '--cfg-options', *roots(missing))
    assert proc.returncode == 1
    assert f'data root not found: {missing}' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_missing_annotation_file_fails(data):
    proc = check(DET, '--split', 'val', '--cfg-options',
                 *roots(f'{data / "coco"}/'),
                 'val_dataloader.dataset.ann_file=nope.json')
    assert proc.returncode == 1
    assert f'annotation file not found: {data / "coco"}/nope.json' in \
        proc.stderr


def test_missing_images_and_classes_are_reported(data, tmp_path):
    import shutil
    coco = tmp_path / 'coco'
    shutil.copytree(data / 'coco', coco)
    gone = sorted(os.listdir(coco / 'val'))[:2]
    for name in gone:
        os.remove(coco / 'val' / name)
    proc = check(DET, '--split', 'val', '--cfg-options', *roots(f'{coco}/'),
                 'model.roi_head.bbox_head.num_classes=5',
                 'model.roi_head.mask_head.num_classes=5')
    assert proc.returncode == 1
    assert '2 of 3 referenced files missing' in proc.stderr
    assert gone[0] in proc.stderr
    assert '3 dataset classes but the model has num_classes [5]' in \
        proc.stderr
