# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks that the data a config points at exists and is usable, before a
run starts."""
import importlib
import json
import os
import os.path as osp
import re
import time
from collections import Counter
from typing import Iterable, Iterator, List, Optional, Sequence

from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook

from smt_mm.config_tree import innermost_dataset
from smt_mm.errors import LaunchError

# Image and label map files the loaders of mmdet / mmseg / mmpretrain read
# (mmcv's image suffixes).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')
# COCO files up to this size are parsed whole to read their categories;
# larger ones (instances_train2017.json: 450 MB) only at both ends, where
# the categories list sits.
FULL_PARSE_BYTES = 64 << 20
END_BYTES = 4 << 20
SHOW = 5
# COCO images hold up to ~90 objects, LVIS's a few hundred; an image with
# far more is a broken file (duplicated annotations), not a dataset.
MAX_ANNOTATIONS_PER_IMAGE = 10_000
# label maps read to check their values against the model's classes
LABEL_MAP_SAMPLE = 16
# Keys of a data-list entry that name files which must exist.
FILE_KEYS = ('img_path', 'seg_map_path')
# How long the check before training looks at the files a dataset lists;
# files past that are read (and a missing one named) when training gets
# to them.
FILE_CHECK_SECONDS = 30.0


def check_datasets(cfg: Config, *splits: str) -> None:
    """Fail early, naming the path, when a dataset's annotation file or
    image folder is missing or empty, an image file in it is empty (0
    bytes), or a COCO annotation file lacks a class the dataset uses.

    Without this the run builds the whole model first and then fails inside
    a dataset or a data worker with a long traceback: a 0-byte image as a
    cv2 error that does not name the file, a missing COCO class not at all
    (mmdet numbers the classes it finds, so labels shift silently).
    ``splits`` are dataloader names such as ``'train_dataloader'``; absent
    ones and remote paths (``s3://``...) are skipped. The image check costs
    one ``os.stat`` per image file.
    """
    scope = cfg.get('default_scope')
    for split in splits:
        loader = cfg.get(split)
        if not loader or 'dataset' not in loader:
            continue
        dataset = innermost_dataset(loader.dataset)
        for problem in _dataset_problems(dataset, scope):
            raise LaunchError(f'{split}.dataset: {problem}')
        if scope == 'mmseg':
            for problem in label_map_problems(dataset, _seg_classes(cfg)):
                raise LaunchError(f'{split}.dataset: {problem}')


def _dataset_problems(dataset: ConfigDict,
                      scope: Optional[str] = None) -> Iterator[str]:
    root = dataset.get('data_root') or ''
    if '://' in str(root):
        return
    if root and not osp.isdir(root):
        yield f'data_root folder not found: {root}'
        return
    ann_file = dataset.get('ann_file')
    if ann_file and '://' not in str(ann_file):
        yield from _annotation_problems(
            osp.join(root, ann_file), dataset, scope)
    prefix = dataset.get('data_prefix') or {}
    folders = prefix.values() if isinstance(prefix, dict) else [prefix]
    for folder in folders:
        if not isinstance(folder, str) or not folder or '://' in folder:
            continue
        path = osp.join(root, folder)
        if not osp.isdir(path):
            yield f'data folder not found: {path}'
        elif not any(os.scandir(path)):
            yield f'data folder is empty: {path}'
        elif os.environ.get('LOCAL_RANK', '0') == '0':
            # one process per machine walks the folder (one stat a file)
            yield from _empty_image_problems(path)
        if scope == 'mmpretrain' and not ann_file and osp.isdir(path):
            yield from _class_folder_problems(path, dataset, scope)


def _annotation_problems(path: str, dataset: ConfigDict,
                         scope: Optional[str]) -> Iterator[str]:
    if not osp.isfile(path):
        yield f'annotation file not found: {path}'
    elif osp.getsize(path) == 0:
        yield f'annotation file is empty (0 bytes): {path}'
    elif path.endswith('.json'):
        classes, source = _dataset_classes(dataset, scope)
        try:
            data = read_json(path) if osp.getsize(path) <= \
                FULL_PARSE_BYTES else None
            yield from coco_structure_problems(path, data)
            problem = coco_class_problem(path, classes, source, data=data)
        except ValueError as err:  # not JSON, nested too deeply
            problem = str(err)
        if problem:
            yield problem
    elif scope == 'mmpretrain' and not path.endswith(('.json', '.pkl')):
        classes, _ = _dataset_classes(dataset, scope)
        yield from label_list_problems(path, len(classes) or None)


def _class_folder_problems(path: str, dataset: ConfigDict,
                           scope: str) -> Iterator[str]:
    """A folder dataset (no annotation file) holds one folder per class;
    mmpretrain compares only their number, with an assertion."""
    classes, source = _dataset_classes(dataset, scope)
    if not classes:
        return
    folders = sorted(
        entry.name for entry in os.scandir(path)
        if entry.is_dir() and not entry.name.startswith('.'))
    if len(folders) != len(classes):
        missing = [c for c in classes if c not in folders]
        named = f' (no folder for: {", ".join(map(str, missing[:SHOW]))})' \
            if missing and len(missing) < len(classes) else ''
        yield (f'{path} has {len(folders)} class folders but the dataset has '
               f'{len(classes)} classes ({source}){named}: a folder dataset '
               'holds one folder of images per class')


def _empty_image_problems(folder: str) -> Iterator[str]:
    empty = empty_image_files(folder)
    if empty:
        yield (f'{len(empty)} empty (0-byte) image file(s) under {folder}, '
               f'e.g. {", ".join(empty[:SHOW])}; replace them with the '
               'real images or remove them and their annotations')


def empty_image_files(folder: str) -> List[str]:
    """Image files under ``folder`` (recursively) that are 0 bytes long,
    sorted. Other files (``.gitkeep``, lists) may well be empty."""
    empty, seen = [], set()
    for parent, folders, names in os.walk(folder, followlinks=True):
        # links may loop (a -> .., two links to each other): each real
        # folder is walked once
        key = _folder_key(parent)
        if key is None or key in seen:
            folders[:] = []
            continue
        seen.add(key)
        for name in names:
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = osp.join(parent, name)
            try:
                if os.stat(path).st_size == 0:
                    empty.append(path)
            except OSError:  # a broken link: the missing-file checks' job
                continue
    return sorted(empty)


def _folder_key(path: str):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _seg_classes(cfg: Config) -> Optional[int]:
    head = (cfg.get('model') or {}).get('decode_head')
    heads = head if isinstance(head, (list, tuple)) else [head]
    counts = {h.get('num_classes') for h in heads if isinstance(h, dict)}
    counts.discard(None)
    return counts.pop() if len(counts) == 1 else None


def label_map_problems(dataset: ConfigDict,
                       num_classes: Optional[int]) -> Iterator[str]:
    """A class the model cannot predict in a sample of the label maps
    (``LABEL_MAP_SAMPLE`` of them, spread over the sorted folder: a check
    of seconds however large the dataset): mmseg's loss would stop with
    ``IndexError: Target N is out of bounds`` in the middle of training.
    With ``reduce_zero_label`` (the dataset's, else its type's default),
    stored values 1..N are classes 0..N-1 and 0 is ignored; 255 is always
    ignored."""
    prefix = dataset.get('data_prefix') or {}
    folder = prefix.get('seg_map_path') if isinstance(prefix, dict) else None
    if not num_classes or not isinstance(folder, str) or '://' in folder:
        return
    folder = osp.join(dataset.get('data_root') or '', folder)
    suffix = dataset.get('seg_map_suffix') or _default(dataset,
                                                       'seg_map_suffix', '')
    reduce_zero = dataset.get('reduce_zero_label')
    if reduce_zero is None:
        reduce_zero = _default(dataset, 'reduce_zero_label', False)
    maps = sorted(
        name for name in (os.listdir(folder) if osp.isdir(folder) else [])
        if name.endswith(suffix))
    if not maps:
        return
    step = max(1, len(maps) // LABEL_MAP_SAMPLE)
    top = num_classes + (1 if reduce_zero else 0)  # stored values < top
    import numpy as np
    from PIL import Image
    for name in maps[::step][:LABEL_MAP_SAMPLE]:
        path = osp.join(folder, name)
        try:
            with Image.open(path) as image:
                values = np.unique(np.asarray(image))
        except Exception:  # not an image: the loaders' check says so
            continue
        bad = values[(values >= top) & (values != 255)]
        if bad.size:
            shift = ' (reduce_zero_label: stored 1..N are classes 0..N-1)' \
                if reduce_zero else ''
            yield (f'label map {path} holds value {int(bad.max())}, but the '
                   f'model predicts {num_classes} classes: valid values are '
                   f'0..{top - 1} and 255 (ignored){shift}; set the decode '
                   "head's num_classes or fix the maps")
            return


def _default(dataset: ConfigDict, name: str, fallback):
    """The default of ``name`` in the dataset type's constructor."""
    import inspect
    dataset_cls = _dataset_class(dataset.get('type'), 'mmseg')
    try:
        value = inspect.signature(dataset_cls).parameters[name].default
    except (TypeError, ValueError, KeyError):
        return fallback
    return fallback if value is inspect.Parameter.empty else value


def _dataset_classes(dataset: ConfigDict, scope: Optional[str]):
    """The classes a dataset config uses and where they come from: the
    config's ``metainfo``, else the dataset class's defaults."""
    classes = (dataset.get('metainfo') or {}).get('classes')
    if isinstance(classes, (list, tuple)):
        return list(classes), 'metainfo classes of the config'
    dataset_cls = _dataset_class(dataset.get('type'), scope)
    classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    if isinstance(classes, (list, tuple)):
        return list(classes), (f'default classes of {dataset_cls.__name__}; '
                               'set metainfo=dict(classes=...) to use '
                               'others')
    return [], ''


def _dataset_class(name, scope):
    if not isinstance(name, str) or not isinstance(scope, str):
        return None
    try:
        registry = importlib.import_module(f'{scope}.registry').DATASETS
        return registry.get(name)
    except Exception:  # unknown scope or type: the runner will say so
        return None


def read_json(path: str):
    """The parsed JSON file ``path``; ``ValueError`` naming the file when it
    is not JSON or nests deeper than Python's reader allows."""
    try:
        with open(path, 'rb') as f:
            return json.load(f)
    except RecursionError:
        raise ValueError(f'annotation file {path} nests lists or objects '
                         'deeper than a JSON reader allows; it is not an '
                         'annotation file') from None
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f'annotation file is not valid JSON: {path} '
                         f'({err})') from None


def coco_class_problem(path: str,
                       classes: Sequence[str],
                       source: str = 'classes of the config',
                       data=None) -> str:
    """A message when COCO-style annotations ``path`` lack some of
    ``classes``, else ''. Files without a ``categories`` list (other
    formats) pass. ``data``: the parsed file, when the caller has it.
    Raises ``ValueError`` for a file that is not JSON."""
    names = coco_category_names(path, data)
    if not classes or names is None:
        return ''
    names = [str(n) for n in names]
    known = set(names)
    missing = [str(c) for c in classes if str(c) not in known]
    if not missing:
        return ''
    return (f'{path} has no categories named {", ".join(missing[:10])} '
            f'({source}); its categories are {", ".join(names[:20])}'
            f'{" ..." if len(names) > 20 else ""}')


def coco_category_names(path: str, data=None) -> Optional[List]:
    """Category names of a COCO-style JSON file (as written: a name that is
    not a string stays what it is); None when it has no ``categories``
    list (or, for a large file, none near either end)."""
    if data is None and osp.getsize(path) <= FULL_PARSE_BYTES:
        data = read_json(path)
    if data is not None:
        categories = data.get('categories') if isinstance(data, dict) \
            else None
    else:
        categories = _categories_near_ends(path)
    if not isinstance(categories, list):
        return None
    return [c.get('name') for c in categories if isinstance(c, dict)]


def _is_number(value) -> bool:
    import math
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _entry(kind: str, index: int, entry) -> str:
    ident = entry.get('id') if isinstance(entry, dict) else None
    return f'{kind}[{index}]' + (f' (id {ident!r})'
                                 if ident is not None else '')


def coco_structure_problems(path: str, data) -> Iterator[str]:
    """What in a parsed COCO-style file mmdet could not read: categories
    without an integer id or a string name, images without an id or file
    name, annotations whose bbox is not four finite numbers (width and
    height not negative), whose image or category is unknown or whose
    polygons are not lists of numbers. One message per kind of problem,
    naming the first entry. Files without ``images`` / ``annotations``
    lists (other formats) pass. ``data`` None (a file too large to parse
    whole): only the crowded-image check, streamed."""
    if data is None:
        yield from streamed_crowded_problems(path)
        return
    if not isinstance(data, dict) or not isinstance(
            data.get('annotations'), list) or not isinstance(
                data.get('images'), list):
        return
    found = {}

    def note(kind, message):
        found.setdefault(kind, [0, message])[0] += 1

    categories = data.get('categories')
    category_ids = set()
    if not isinstance(categories, list):
        note('categories', 'has no categories list')
        categories = []
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or isinstance(cat.get('id'), bool) or \
                not isinstance(cat.get('id'), int):
            note('category id', f'{_entry("categories", i, cat)} has no '
                 'integer id')
            continue
        category_ids.add(cat['id'])
        if not isinstance(cat.get('name'), str):
            note(
                'category name', f'{_entry("categories", i, cat)} has name '
                f'{cat.get("name")!r}, not a string (write it in quotes)')
    image_ids = set()
    for i, image in enumerate(data['images']):
        if not isinstance(image, dict) or isinstance(
                image.get('id'),
                bool) or not isinstance(image.get('id'), (int, str)):
            note('image id', f'{_entry("images", i, image)} has no id')
            continue
        image_ids.add(image['id'])
        if not isinstance(image.get('file_name'), str) or \
                not image['file_name']:
            note(
                'file name', f'{_entry("images", i, image)} has file_name '
                f'{image.get("file_name")!r}, not a file name')
        for key in ('width', 'height'):
            if key in image and not (_is_number(image[key])
                                     and image[key] > 0):
                note(
                    key, f'{_entry("images", i, image)} has {key} '
                    f'{image[key]!r}, not a positive number')
    for i, ann in enumerate(data['annotations']):
        where = _entry('annotations', i, ann)
        if not isinstance(ann, dict):
            note('annotation', f'{where} is a {type(ann).__name__}, not an '
                 'object')
            continue
        bbox = ann.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                map(_is_number, bbox)) and bbox[2] >= 0 and bbox[3] >= 0):
            note(
                'bbox', f'{where} has bbox {_short(bbox)}, expected [x, y, '
                'width, height]: four numbers, width and height not '
                'negative')
        if ann.get('image_id') not in image_ids:
            note(
                'image_id', f'{where} has image_id '
                f'{_short(ann.get("image_id"))}, which no image has')
        if ann.get('category_id') not in category_ids:
            note(
                'category_id', f'{where} has category_id '
                f'{_short(ann.get("category_id"))}, which no category '
                'has')
        segmentation = ann.get('segmentation')
        if isinstance(segmentation, list) and not all(
                isinstance(p, list) and len(p) >= 6 and len(p) %
                2 == 0 and all(map(_is_number, p)) for p in segmentation):
            note(
                'segmentation', f'{where} has a polygon that is not a '
                'list of at least 3 x, y number pairs')
        elif segmentation is not None and not isinstance(
                segmentation, (list, dict)):
            note(
                'segmentation', f'{where} has segmentation '
                f'{_short(segmentation)}, expected polygons or RLE')
    crowded = crowded_problem(
        Counter(
            ann.get('image_id') for ann in data['annotations']
            if isinstance(ann, dict)))
    if crowded:
        found['crowded'] = crowded
    for count, message in found.values():
        more = f' (and {count - 1} more like it)' if count > 1 else ''
        yield f'{path}: {message}{more}'


def crowded_problem(per_image: Counter):
    """``[how many, message]`` for the images with more than
    ``MAX_ANNOTATIONS_PER_IMAGE`` annotations in ``per_image`` (image id ->
    count), naming the most crowded; None if there are none."""
    crowded = [(n, image) for image, n in per_image.items()
               if n > MAX_ANNOTATIONS_PER_IMAGE]
    if not crowded:
        return None
    n, image = max(crowded, key=lambda item: item[0])
    return [
        len(crowded), f'image_id {_short(image)} has {n} annotations, more '
        f'than {MAX_ANNOTATIONS_PER_IMAGE} (its masks and targets would take '
        'gigabytes in one step); split the image or drop duplicates'
    ]


_IMAGE_ID = re.compile(rb'"image_id"\s*:\s*(-?\d+)')


def streamed_crowded_problems(path: str,
                              chunk: int = 16 << 20) -> Iterator[str]:
    """The crowded-image check of :func:`coco_structure_problems` for a
    file too large to parse whole: ``"image_id": N`` pairs counted in
    chunks (memory grows with the number of images, not the file)."""
    per_image, tail = Counter(), b''
    with open(path, 'rb') as f:
        while True:
            block = f.read(chunk)
            text = tail + block
            # pairs ending in the last 64 bytes may go on in the next block
            end = len(text) if not block else len(text) - 64
            done = [m for m in _IMAGE_ID.finditer(text) if m.end() <= end]
            per_image.update(int(m.group(1)) for m in done)
            if not block:
                break
            tail = text[max(done[-1].end() if done else 0, end - 32):]
    crowded = crowded_problem(per_image)
    if crowded:
        count, message = crowded
        more = f' (and {count - 1} more like it)' if count > 1 else ''
        yield f'{path}: {message}{more}'


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def label_list_problems(path: str,
                        num_classes: Optional[int]) -> Iterator[str]:
    """An mmpretrain list file (``<image path> <label>`` per line): labels
    that are not whole numbers, or not below ``num_classes``."""
    bad, first = 0, None
    with open(path, encoding='utf-8', errors='replace') as f:
        for number, line in enumerate(f, 1):
            parts = line.strip().rsplit(' ', 1)
            if len(parts) < 2:
                continue  # no label: an unlabelled list
            label = parts[1]
            valid = label.isdigit() and (num_classes is None
                                         or int(label) < num_classes)
            if not valid:
                bad += 1
                first = first or (number, label)
    if bad:
        number, label = first
        valid = f'0 to {num_classes - 1}' if num_classes else \
            'whole numbers from 0'
        yield (f'{path} line {number}: label {label!r} is not a class of '
               f'this dataset (valid: {valid}); {bad} line(s) like it')


def _categories_near_ends(path: str):
    """The ``categories`` list of a large JSON file, read from its last or
    first ``END_BYTES`` only; None if not found there."""
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(END_BYTES)
        f.seek(max(size - END_BYTES, 0))
        tail = f.read()
    for chunk in (tail, head):
        match = re.search(rb'"categories"\s*:\s*\[', chunk)
        if match is None:
            continue
        text = chunk[match.end() - 1:].decode('utf-8', errors='replace')
        try:
            return json.JSONDecoder().raw_decode(text)[0]
        except (ValueError, RecursionError):  # runs past the chunk
            continue
    return None


def dataset_folders(cfg: Config) -> List[str]:
    """The real paths of the local folders a config's datasets read from:
    each dataloader's ``data_root``, its ``data_prefix`` folders and the
    folder of its ``ann_file``."""
    folders = set()
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if not isinstance(loader, dict) or 'dataset' not in loader:
            continue
        dataset = innermost_dataset(loader.dataset)
        root = dataset.get('data_root') or ''
        if not isinstance(root, str) or '://' in root:
            continue
        paths = [root] if root else []
        prefix = dataset.get('data_prefix') or {}
        paths += prefix.values() if isinstance(prefix, dict) else [prefix]
        ann_file = dataset.get('ann_file')
        if isinstance(ann_file, str) and ann_file:
            paths.append(osp.dirname(osp.join(root, ann_file)) or '.')
        for path in paths:
            if isinstance(path, str) and path and '://' not in path:
                folders.add(osp.realpath(osp.join(root, path)))
    return sorted(folders)


def dataset_folder_holding(path: str, cfg: Config) -> Optional[str]:
    """The dataset folder of ``cfg`` that ``path`` is (or lies inside), or
    None. ``data_root`` counts only as itself: a new folder inside it, next
    to the data, holds no dataset files."""
    real = osp.realpath(path)
    roots = set()
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if isinstance(loader, dict) and 'dataset' in loader:
            root = innermost_dataset(loader.dataset).get('data_root')
            if isinstance(root, str) and root and '://' not in root:
                roots.add(osp.realpath(root))
    for folder in dataset_folders(cfg):
        if real == folder or (folder not in roots and
                              real.startswith(folder.rstrip(os.sep) + os.sep)):
            return folder
    return None


_IMAGE_FAILURE = re.compile(r'failed to load image: (.+?)\s*$', re.M)


def data_error_message(err: BaseException) -> Optional[str]:
    """One line for a failure that bad data causes while a run loads it,
    else None (a bug: keep the traceback). Covers mmcv's ``LoadImageFromFile``
    on a file that does not decode, in the main process or a data worker
    (which re-raises it with the worker's traceback in the message)."""
    if isinstance(err, AssertionError):
        found = _IMAGE_FAILURE.findall(str(err))
        if found:
            return (f'cannot read image {found[-1]}: it does not decode as '
                    'an image (damaged, or not an image despite its name); '
                    'replace it, or remove it and its annotation')
    return None


def data_file_problems(infos: Iterable[dict], seconds: Optional[float] = None):
    """Look at the files that data-list entries ``infos`` name
    (``img_path``, ``seg_map_path``), for at most ``seconds``.

    Returns:
        tuple: ``(checked, missing, empty, complete)``: how many files were
        looked at, the missing ones, the empty (0-byte) ones, and whether
        every entry was reached.
    """
    end = None if seconds is None else time.monotonic() + seconds
    checked, missing, empty = 0, [], []
    for info in infos:
        if end is not None and time.monotonic() > end:
            return checked, missing, empty, False
        for key in FILE_KEYS:
            path = info.get(key)
            if isinstance(path, str):
                checked += 1
                if not osp.isfile(path):
                    missing.append(path)
                elif osp.getsize(path) == 0:
                    empty.append(path)
    return checked, missing, empty, True


class DataFilesCheck(Hook):
    """Before the first iteration, the files that the train and val
    datasets list exist and are not empty (for at most ``seconds`` per
    dataset): a run stops with one line instead of a traceback when the
    loader reaches a missing image, possibly hours in. The datasets are the
    ones the runner built, so nothing is parsed twice."""

    priority = 'VERY_HIGH'

    def __init__(self, seconds: float = FILE_CHECK_SECONDS):
        self.seconds = seconds

    def before_train(self, runner) -> None:
        loops = (('train', runner.train_loop),
                 ('val', getattr(runner, '_val_loop', None)))
        for split, loop in loops:
            dataset = getattr(
                getattr(loop, 'dataloader', None), 'dataset', None)
            if dataset is not None:
                self._check(runner, split, dataset)

    def _check(self, runner, split, dataset) -> None:
        infos = (dataset.get_data_info(i) for i in range(len(dataset)))
        checked, missing, empty, complete = data_file_problems(
            infos, self.seconds)
        for what, paths in (('missing', missing), ('empty (0 bytes)', empty)):
            if paths:
                raise LaunchError(
                    f'[{split}] {len(paths)} of the {checked} files the '
                    f'dataset lists are {what}, e.g. '
                    f'{", ".join(paths[:SHOW])}; '
                    'tools/misc/check_dataset.py CONFIG lists them all')
        if not complete:
            runner.logger.info(
                f'[{split}] {checked} files the dataset lists checked in '
                f'{self.seconds:g} s; the others are checked as they are '
                'read')
