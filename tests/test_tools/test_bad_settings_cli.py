# Copyright (c) SMT-MM contributors. All rights reserved.
"""Bad settings through the tools: one ``error: ...`` line naming what is
wrong and what would be valid, exit status 1, no traceback. The checks
themselves are tested function by function in tests/test_checks,
tests/test_launch and tests/test_models; these runs prove the tools call
them."""
import sys

import pytest
from helpers import QUICKSTART, data_root_options, run_tool, tool_error


def one_line_error(args):
    proc = run_tool([sys.executable, *args], check=False, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert 'Traceback' not in output, output[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: '), output[-3000:]
    return last


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    """Tiny synthetic COCO data with one 0-byte training image."""
    from smt_mm.datasets.synthetic_coco import make_synthetic_coco
    root = tmp_path_factory.mktemp('coco')
    make_synthetic_coco(
        str(root), num_train=2, num_val=1, seed=0, image_size=(32, 32))
    image = sorted((root / 'train').iterdir())[0]
    image.write_bytes(b'')
    return root, image


def test_train_type_typo(tmp_path):
    last = one_line_error([
        'tools/train.py', QUICKSTART, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', 'model.backbone.type=SMTT'
    ])
    assert last.startswith("error: model.backbone: unknown type 'SMTT' "
                           "(did you mean 'SMT'?)")


@pytest.mark.slow
def test_test_tool_smt_argument_typo(tmp_path):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')  # never read: the config fails first
    last = one_line_error([
        'tools/test.py', QUICKSTART,
        str(checkpoint), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', 'model.backbone.archh=tiny'
    ])
    # a near-miss of a key the config has: refused before the model check
    assert last == ('error: --cfg-options model.backbone.archh=tiny: the '
                    'config has no model.backbone.archh; did you mean '
                    'model.backbone.arch?')


@pytest.mark.slow
def test_train_zero_byte_image(coco, tmp_path):
    root, image = coco
    last = one_line_error([
        'tools/train.py', QUICKSTART, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *data_root_options(f'{root}/')
    ])
    assert 'train_dataloader.dataset: 1 empty (0-byte) image file(s)' in last
    assert str(image) in last
    assert not (tmp_path / 'work').exists()  # failed before the runner


def test_check_dataset_tool_reports_empty_image_and_missing_class(coco):
    root, image = coco
    proc = run_tool([
        sys.executable, 'tools/misc/check_dataset.py', QUICKSTART, '--split',
        'train', '--cfg-options', *data_root_options(f'{root}/'),
        "train_dataloader.dataset.metainfo.classes=('square','disc','hexagon')"
    ],
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    # One line per problem. (The file keeps 1 or 2 images: filter_empty_gt
    # drops those with none of the classes the dataset has.)
    errors = [
        line for line in proc.stderr.splitlines() if line.startswith('error')
    ]
    assert len(errors) == 2, proc.stderr
    assert errors[0].startswith('error: [train] CocoDataset: ')
    assert 'has no categories named hexagon' in errors[0]
    assert errors[1].startswith('error: [train] CocoDataset: 1 of ')
    assert errors[1].endswith(
        f'referenced files are empty (0 bytes), e.g. {image}')
    assert proc.stderr.strip().splitlines()[-1] == errors[1]


def test_bad_coco_annotation_is_one_line(coco, tmp_path):
    """A bbox mmdet cannot unpack: refused by train.py before the model is
    built, and by check_dataset.py before the dataset is."""
    import json
    import shutil
    root = tmp_path / 'coco'
    shutil.copytree(coco[0], root)
    path = root / 'annotations' / 'instances_train.json'
    data = json.loads(path.read_text())
    data['annotations'][0]['bbox'] = 'abc'
    path.write_text(json.dumps(data))
    bad = (f"{path}: annotations[0] (id {data['annotations'][0]['id']}) has "
           "bbox 'abc', expected [x, y, width, height]")
    message = tool_error('tools/train.py', [
        QUICKSTART, '--work-dir', tmp_path / 'work', '--cfg-options',
        *data_root_options(f'{root}/')
    ])
    assert message.startswith(f'train_dataloader.dataset: {bad}')
    last = one_line_error([
        'tools/misc/check_dataset.py', QUICKSTART, '--split', 'train',
        '--cfg-options', *data_root_options(f'{root}/')
    ])
    assert last.startswith(f'error: [train] CocoDataset: {bad}')
