# Copyright (c) SMT-MM contributors. All rights reserved.
"""``check_datasets`` (run by tools/train.py and tools/test.py before the
runner) names 0-byte images, empty or broken annotation files and COCO
files that lack a class the dataset uses."""
import json
import os.path as osp

import pytest
from helpers import QUICKSTART, data_root_options
from mmengine.config import ConfigDict

from smt_mm.errors import LaunchError
from smt_mm.utils import dataset_check
from smt_mm.utils.config import load_config
from smt_mm.utils.dataset_check import (check_datasets, coco_category_names,
                                        empty_image_files)

TRAIN = 'train_dataloader'


@pytest.fixture(scope='module')
def coco_master(tmp_path_factory):
    from smt_mm.utils.synthetic_coco import make_synthetic_coco
    root = tmp_path_factory.mktemp('coco')
    make_synthetic_coco(
        str(root), num_train=2, num_val=1, seed=0, image_size=(32, 32))
    return root


@pytest.fixture
def coco(coco_master, tmp_path):
    """A private copy of the tiny synthetic COCO set."""
    import shutil
    root = tmp_path / 'coco'
    shutil.copytree(coco_master, root)
    return root


def config(root, **options):
    opts = dict(
        option.split('=', 1) for option in data_root_options(f'{root}/'))
    opts.update(options)
    return load_config(QUICKSTART, opts)


def train_problem(cfg):
    with pytest.raises(LaunchError) as err:
        check_datasets(cfg, TRAIN)
    return str(err.value)


def test_complete_data_passes(coco):
    (coco / 'train' / '.gitkeep').write_text('')  # empty, but no image
    check_datasets(config(coco), TRAIN, 'val_dataloader')


def test_zero_byte_image_is_named(coco):
    image = sorted((coco / 'train').iterdir())[0]
    image.write_bytes(b'')
    message = train_problem(config(coco))
    assert message.startswith(f'{TRAIN}.dataset: 1 empty (0-byte) image '
                              f'file(s) under {coco}/train/')
    assert str(image) in message


def test_zero_byte_images_in_nested_class_folders(tmp_path):
    # an ImageNet-style folder dataset (mmpretrain's short data_prefix)
    for name in ('cat/a.JPEG', 'cat/b.jpeg', 'dog/c.png', 'dog/list.txt'):
        path = tmp_path / 'train' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'' if name != 'cat/a.JPEG' else b'\xff\xd8')
    assert empty_image_files(str(tmp_path)) == [
        str(tmp_path / 'train/cat/b.jpeg'),
        str(tmp_path / 'train/dog/c.png')
    ]
    cfg = ConfigDict(
        test_dataloader=dict(
            dataset=dict(
                type='ImageNet', data_root=str(tmp_path),
                data_prefix='train')))
    with pytest.raises(LaunchError, match='2 empty'):
        check_datasets(cfg, 'test_dataloader')


def test_empty_annotation_file(coco):
    (coco / 'annotations' / 'instances_train.json').write_text('')
    message = train_problem(config(coco))
    assert 'annotation file is empty (0 bytes):' in message
    assert 'instances_train.json' in message


def test_broken_annotation_file(coco):
    (coco / 'annotations' / 'instances_train.json').write_text('{"images": [')
    assert 'annotation file is not valid JSON:' in train_problem(config(coco))


def test_coco_file_without_a_config_class(coco):
    classes = ('square', 'disc', 'hexagon')
    message = train_problem(
        config(coco, **{f'{TRAIN}.dataset.metainfo.classes': classes}))
    assert 'instances_train.json has no categories named hexagon ' \
        '(metainfo classes of the config)' in message
    # what would be valid: the classes the file has
    assert 'its categories are square, disc, triangle' in message


def test_coco_file_without_default_classes(coco):
    # no metainfo: mmdet's CocoDataset uses its 80 COCO classes, of which
    # the file has none (and would number the ones it has in file order)
    cfg = config(coco, **{f'{TRAIN}.dataset.metainfo': None})
    message = train_problem(cfg)
    assert 'has no categories named person, bicycle' in message
    assert 'default classes of CocoDataset' in message


def coco_json(path, categories_first):
    categories = [dict(id=1, name='square'), dict(id=2, name='disc')]
    filler = [dict(id=i, file_name=f'{i:06d}.jpg') for i in range(2000)]
    data = dict(categories=categories) if categories_first else {}
    data.update(images=filler, annotations=[])
    if not categories_first:
        data['categories'] = categories
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize('categories_first', [True, False])
def test_categories_of_large_file_read_at_its_ends(tmp_path, monkeypatch,
                                                   categories_first):
    path = coco_json(tmp_path / 'big.json', categories_first)
    monkeypatch.setattr(dataset_check, 'FULL_PARSE_BYTES', 0)
    monkeypatch.setattr(dataset_check, 'END_BYTES', 1000)
    assert osp.getsize(path) > 10 * 1000
    assert coco_category_names(path) == ['square', 'disc']
    # not parsed whole: a file broken in the middle still answers
    text = open(path).read()
    middle = len(text) // 2
    with open(path, 'w') as f:
        f.write(text[:middle] + '@@' + text[middle:])
    assert coco_category_names(path) == ['square', 'disc']


def test_categories_in_the_middle_of_a_large_file_are_skipped(
        tmp_path, monkeypatch):
    path = tmp_path / 'big.json'
    filler = ['x' * 50] * 200
    path.write_text(
        json.dumps(
            dict(
                images=filler,
                categories=[dict(id=1, name='a')],
                annotations=filler)))
    monkeypatch.setattr(dataset_check, 'FULL_PARSE_BYTES', 0)
    monkeypatch.setattr(dataset_check, 'END_BYTES', 1000)
    assert coco_category_names(str(path)) is None
