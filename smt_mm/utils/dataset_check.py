# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks that the data a config points at exists and is usable, before a
run starts."""
import importlib
import json
import os
import os.path as osp
import re
from typing import Iterator, List, Optional, Sequence

from mmengine.config import Config, ConfigDict

from smt_mm.errors import LaunchError
from .config import innermost_dataset

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


def _annotation_problems(path: str, dataset: ConfigDict,
                         scope: Optional[str]) -> Iterator[str]:
    if not osp.isfile(path):
        yield f'annotation file not found: {path}'
    elif osp.getsize(path) == 0:
        yield f'annotation file is empty (0 bytes): {path}'
    elif path.endswith('.json'):
        classes, source = _dataset_classes(dataset, scope)
        try:
            problem = coco_class_problem(path, classes, source)
        except ValueError as err:  # json.JSONDecodeError
            problem = f'annotation file is not valid JSON: {path} ({err})'
        if problem:
            yield problem


def _empty_image_problems(folder: str) -> Iterator[str]:
    empty = empty_image_files(folder)
    if empty:
        yield (f'{len(empty)} empty (0-byte) image file(s) under {folder}, '
               f'e.g. {", ".join(empty[:SHOW])}; replace them with the '
               'real images or remove them and their annotations')


def empty_image_files(folder: str) -> List[str]:
    """Image files under ``folder`` (recursively) that are 0 bytes long,
    sorted. Other files (``.gitkeep``, lists) may well be empty."""
    empty = []
    for parent, _, names in os.walk(folder, followlinks=True):
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


def coco_class_problem(path: str,
                       classes: Sequence[str],
                       source: str = 'classes of the config') -> str:
    """A message when COCO-style annotations ``path`` lack some of
    ``classes``, else ''. Files without a ``categories`` list (other
    formats) pass. Raises ``ValueError`` for a file that is not JSON."""
    names = coco_category_names(path)
    if not classes or names is None:
        return ''
    known = set(names)
    missing = [c for c in classes if c not in known]
    if not missing:
        return ''
    return (f'{path} has no categories named {", ".join(missing[:10])} '
            f'({source}); its categories are {", ".join(names[:20])}'
            f'{" ..." if len(names) > 20 else ""}')


def coco_category_names(path: str) -> Optional[List[str]]:
    """Category names of a COCO-style JSON file; None when it has no
    ``categories`` list (or, for a large file, none near either end)."""
    if osp.getsize(path) <= FULL_PARSE_BYTES:
        with open(path, 'rb') as f:
            data = json.load(f)
        categories = data.get('categories') if isinstance(data, dict) \
            else None
    else:
        categories = _categories_near_ends(path)
    if not isinstance(categories, list):
        return None
    return [c.get('name') for c in categories if isinstance(c, dict)]


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
        except ValueError:  # the list runs past the chunk
            continue
    return None
