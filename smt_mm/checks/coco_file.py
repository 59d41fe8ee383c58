# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks of COCO-style annotation files: what mmdet could not read, or
would read wrongly (categories the config's classes lack, images crowded
with annotations), each as one message naming the file and the entry.
Large files are read in parts: the categories near the ends, the
annotations streamed."""
import json
import math
import os.path as osp
import re
from collections import Counter
from typing import Iterator, List, Optional, Sequence

# COCO files up to this size are parsed whole to read their categories;
# larger ones (instances_train2017.json: 450 MB) only at both ends, where
# the categories list sits.
FULL_PARSE_BYTES = 64 << 20
END_BYTES = 4 << 20
# COCO images hold up to ~90 objects, LVIS's a few hundred; an image with
# far more is a broken file (duplicated annotations), not a dataset.
MAX_ANNOTATIONS_PER_IMAGE = 10_000


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


def read_coco(path: str):
    """The parsed COCO-style file ``path``, or None when it is too large to
    parse whole (its checks then read it in parts)."""
    return read_json(path) if osp.getsize(path) <= FULL_PARSE_BYTES else None


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
    if data is None:
        data = read_coco(path)
    if data is not None:
        categories = data.get('categories') if isinstance(data, dict) \
            else None
    else:
        categories = _categories_near_ends(path)
    if not isinstance(categories, list):
        return None
    return [c.get('name') for c in categories if isinstance(c, dict)]


def _is_number(value) -> bool:
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
        yield _counted(path, count, message)


def _counted(path: str, count: int, message: str) -> str:
    more = f' (and {count - 1} more like it)' if count > 1 else ''
    return f'{path}: {message}{more}'


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
        yield _counted(path, *crowded)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


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
