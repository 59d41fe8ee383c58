# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks that the data a config points at exists and is usable, before a
run starts."""
import importlib
import os
import os.path as osp
import re
import time
from typing import Iterable, Iterator, List, Optional

from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook

from smt_mm.config_tree import innermost_dataset
from smt_mm.errors import LaunchError
from .coco_file import coco_class_problem, coco_structure_problems, read_coco

# Image and label map files the loaders of mmdet / mmseg / mmpretrain read
# (mmcv's image suffixes).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')
SHOW = 5
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
            data = read_coco(path)
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
