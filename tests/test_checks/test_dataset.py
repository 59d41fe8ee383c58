# Copyright (c) SMT-MM contributors. All rights reserved.
"""``check_datasets`` (run by tools/train.py and tools/test.py before the
runner) names 0-byte images, empty or broken annotation files and COCO
files that lack a class the dataset uses."""
import json
import os
import os.path as osp

import pytest
from helpers import QUICKSTART, REPO, data_root_options, deadline
from mmengine.config import ConfigDict

from smt_mm.checks import coco_file
from smt_mm.checks.coco_file import coco_category_names
from smt_mm.checks.dataset import check_datasets, empty_image_files
from smt_mm.errors import LaunchError
from smt_mm.launch.config import load_config

TRAIN = 'train_dataloader'


@pytest.fixture(scope='module')
def coco_master(tmp_path_factory):
    from smt_mm.datasets.synthetic_coco import make_synthetic_coco
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


def test_symlink_loops_are_walked_once(tmp_path):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    (tmp_path / 'a' / 'b' / 'x.png').write_bytes(b'')
    os.symlink(tmp_path / 'a', tmp_path / 'a' / 'b' / 'up')  # a loop
    os.symlink(tmp_path / 'l2', tmp_path / 'l1')  # two links to each other
    os.symlink(tmp_path / 'l1', tmp_path / 'l2')
    with deadline(20):
        assert empty_image_files(
            str(tmp_path)) == [str(tmp_path / 'a' / 'b' / 'x.png')]


def test_folder_dataset_missing_a_class_folder(tmp_path):
    for name in ('cat/a.png', 'dog/b.png'):
        path = tmp_path / 'train' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'\x89PNG')
    cfg = ConfigDict(
        default_scope='mmpretrain',
        test_dataloader=dict(
            dataset=dict(
                type='CustomDataset',
                data_root=str(tmp_path),
                data_prefix='train',
                metainfo=dict(classes=['cat', 'dog', 'bird']))))
    with pytest.raises(LaunchError) as err:
        check_datasets(cfg, 'test_dataloader')
    assert str(err.value) == (
        f'test_dataloader.dataset: {tmp_path}/train has 2 class folders but '
        'the dataset has 3 classes (metainfo classes of the config) (no '
        'folder for: bird): a folder dataset holds one folder of images per '
        'class')
    (tmp_path / 'train' / 'bird').mkdir()
    check_datasets(cfg, 'test_dataloader')


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
    monkeypatch.setattr(coco_file, 'FULL_PARSE_BYTES', 0)
    monkeypatch.setattr(coco_file, 'END_BYTES', 1000)
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
    monkeypatch.setattr(coco_file, 'FULL_PARSE_BYTES', 0)
    monkeypatch.setattr(coco_file, 'END_BYTES', 1000)
    assert coco_category_names(str(path)) is None


def edit_train_json(coco, edit):
    path = coco / 'annotations' / 'instances_train.json'
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def test_category_name_that_is_a_number(coco):

    def edit(data):
        data['categories'][0]['name'] = 5

    path = edit_train_json(coco, edit)
    message = train_problem(config(coco))
    assert message == (f'{TRAIN}.dataset: {path}: categories[0] (id 1) has '
                       'name 5, not a string (write it in quotes)')


def test_bbox_that_is_not_four_numbers(coco):

    def edit(data):
        assert len(data['annotations']) >= 2
        data['annotations'][0]['bbox'] = 'abc'
        data['annotations'][-1]['bbox'] = [1, 2, float('nan'), 4]

    path = edit_train_json(coco, edit)
    message = train_problem(config(coco))
    ident = json.loads(path.read_text())['annotations'][0]['id']
    assert message == (
        f"{TRAIN}.dataset: {path}: annotations[0] (id {ident}) has bbox "
        "'abc', expected [x, y, width, height]: four numbers, width and "
        'height not negative (and 1 more like it)')


@pytest.mark.parametrize('parsed', [True, False], ids=['parsed', 'streamed'])
def test_an_image_with_too_many_annotations(coco, monkeypatch, parsed):
    """Also in a file too large to parse whole (counted as it streams)."""
    monkeypatch.setattr(coco_file, 'MAX_ANNOTATIONS_PER_IMAGE', 3)
    if not parsed:
        monkeypatch.setattr(coco_file, 'FULL_PARSE_BYTES', 0)

    def edit(data):
        first = data['annotations'][0]
        data['annotations'] += [dict(first, id=10**6 + i) for i in range(4)]

    path = edit_train_json(coco, edit)
    image = json.loads(path.read_text())['annotations'][0]['image_id']
    message = train_problem(config(coco))
    assert message.startswith(f'{TRAIN}.dataset: {path}: image_id {image} '
                              'has ')
    assert 'annotations, more than 3 (its masks and targets' in message


@pytest.mark.parametrize('key,value,expected', [
    ('image_id', 999, 'has image_id 999, which no image has'),
    ('category_id', '1', "has category_id '1', which no category has"),
    ('segmentation', [[1, 2, 3]], 'has a polygon that is not a list of at '
     'least 3 x, y number pairs'),
])
def test_annotation_fields_mmdet_cannot_read(coco, key, value, expected):

    def edit(data):
        data['annotations'][0][key] = value

    edit_train_json(coco, edit)
    assert expected in train_problem(config(coco))


def test_json_nested_too_deeply(coco):
    path = coco / 'annotations' / 'instances_train.json'
    path.write_text('[' * 100_000 + ']' * 100_000)
    assert train_problem(config(coco)) == (
        f'{TRAIN}.dataset: annotation file {path} nests lists or objects '
        'deeper than a JSON reader allows; it is not an annotation file')


@pytest.fixture
def digits(tmp_path):
    from smt_mm.datasets.digits import make_digits_dataset
    root = tmp_path / 'digits'
    make_digits_dataset(str(root), 0.5, 0, 4)
    return root


def digits_config(root):
    return load_config(
        osp.join(REPO, 'configs/cls/smt_t_digits.py'), {
            f'{split}.dataset.data_root': f'{root}/'
            for split in (TRAIN, 'val_dataloader')
        })


def test_label_outside_the_classes(digits):
    path = digits / 'meta' / 'train.txt'
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(' ', 1)[0] + ' 99'
    lines[3] = lines[3].rsplit(' ', 1)[0] + ' x'
    path.write_text('\n'.join(lines) + '\n')
    assert train_problem(digits_config(digits)) == (
        f"{TRAIN}.dataset: {path} line 3: label '99' is not a class of this "
        'dataset (valid: 0 to 9); 2 line(s) like it')
    check_datasets(digits_config(digits), 'val_dataloader')  # intact


def test_image_that_does_not_decode_is_one_line(tmp_path):
    """mmcv's loader fails on it with an AssertionError, in a data worker
    wrapped with the worker's traceback: both become one line."""
    import torch
    from mmcv.transforms import LoadImageFromFile

    from smt_mm.checks.dataset import data_error_message
    image = tmp_path / 'noise.png'
    image.write_bytes(os.urandom(300))

    class Images(torch.utils.data.Dataset):

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return LoadImageFromFile()(dict(img_path=str(image)))

    expected = (f'cannot read image {image}: it does not decode as an image '
                '(damaged, or not an image despite its name); replace it, or '
                'remove it and its annotation')
    for workers in (0, 1):
        loader = torch.utils.data.DataLoader(
            Images(), num_workers=workers, collate_fn=list)
        with pytest.raises(AssertionError) as err:
            next(iter(loader))
        assert data_error_message(err.value) == expected
    assert data_error_message(AssertionError('x')) is None
    assert data_error_message(ValueError('failed to load image: x')) is None


def test_label_values_the_model_cannot_predict(tmp_path):
    """mmseg's loss stops mid-run on a label >= num_classes: a sample of
    the label maps is read before training instead."""
    import numpy as np
    from PIL import Image

    from smt_mm.datasets.synthetic_ade import make_synthetic_ade
    make_synthetic_ade(str(tmp_path), num_train=3, num_val=1)
    seg = osp.join(REPO, 'configs/seg/smt_t_upernet_synth.py')
    options = dict(
        option.split('=', 1) for option in data_root_options(f'{tmp_path}/'))
    check_datasets(load_config(seg, options), TRAIN)  # as written: fine
    folder = tmp_path / 'annotations' / 'training'
    first = sorted(folder.iterdir())[0]
    labels = np.asarray(Image.open(first)).copy()
    labels[0, 0] = 255  # ignored
    Image.fromarray(labels).save(first)
    check_datasets(load_config(seg, options), TRAIN)
    labels[0, 1] = 9  # reduce_zero_label: stored 1..4 are the 4 classes
    Image.fromarray(labels).save(first)
    with pytest.raises(LaunchError) as err:
        check_datasets(load_config(seg, options), TRAIN)
    assert str(err.value) == (
        f'{TRAIN}.dataset: label map {first} holds value 9, but the model '
        'predicts 4 classes: valid values are 0..4 and 255 (ignored) '
        '(reduce_zero_label: stored 1..N are classes 0..N-1); set the '
        "decode head's num_classes or fix the maps")


def test_train_stops_before_the_first_step_on_a_missing_listed_file(tmp_path):
    """The files a built dataset lists are checked before training starts
    (DataFilesCheck, added by build_runner): one line, no step taken."""
    import glob
    import sys

    from helpers import run_tool, write_tiny_det_config
    config = write_tiny_det_config(
        tmp_path / 'data', num_train=2, batch_size=2, max_epochs=1)
    gone = sorted(glob.glob(str(tmp_path / 'data' / 'train' / '*')))[0]
    os.remove(gone)
    proc = run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        tmp_path / 'work'
    ],
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: [train] 1 of the 2 files the dataset lists are missing, '
        f'e.g. {gone}; tools/misc/check_dataset.py CONFIG lists them all')
    assert 'Epoch(train)' not in proc.stdout + proc.stderr


def test_the_listed_file_check_is_bounded_in_time(tmp_path):
    from smt_mm.checks.dataset import data_file_problems
    (tmp_path / 'a.png').write_bytes(b'x')
    (tmp_path / 'b.png').write_bytes(b'')
    infos = [{'img_path': str(tmp_path / n)} for n in ('a.png', 'b.png', 'c')]
    assert data_file_problems(infos) == (3, [str(tmp_path / 'c')],
                                         [str(tmp_path / 'b.png')], True)
    assert data_file_problems(iter(infos), seconds=0) == (0, [], [], False)


@pytest.mark.parametrize('chunk', [97, 100, 4096])
def test_streamed_image_ids_survive_block_ends(tmp_path, chunk, monkeypatch):
    counted = {}
    monkeypatch.setattr(coco_file, 'crowded_problem', counted.update)
    ids = [7, 1234567, 7, 42] * 50
    text = json.dumps(
        {'annotations': [{
            'image_id': i,
            'x': 'y' * (i % 9)
        } for i in ids]},
        indent=1)
    (tmp_path / 'a.json').write_text(text)
    list(
        coco_file.streamed_crowded_problems(
            str(tmp_path / 'a.json'), chunk=chunk))
    assert counted == {7: 100, 1234567: 50, 42: 50}
