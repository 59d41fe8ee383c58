# Copyright (c) SMT-MM contributors. All rights reserved.
"""A small synthetic COCO-format instance segmentation dataset.

Images hold a few non-overlapping filled shapes (square, disc, triangle) in
random colours on a textured background; every shape is an instance with a
polygon mask. A shape is painted as exactly the pixels its stored polygon
decodes to in COCO's convention (pycocotools, as mmdet's
``LoadAnnotations`` reads it: coordinates on pixel edges, pixel ``i``
covering ``[i, i + 1)``), so mask, box and area line up with the image;
OpenCV's ``fillPoly`` puts vertices on pixel centres and paints every
pixel the outline touches, which put the masks half a pixel up-left of
(and a rim smaller than) the shapes. Generation is deterministic for a
given seed, needs no download and takes a few seconds, so detection runs
can be tried anywhere.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

CLASSES = ('square', 'disc', 'triangle')


def _shape_polygon(rng: np.random.RandomState, kind: str, cx: float, cy: float,
                   size: float) -> np.ndarray:
    """Outline of one shape as an (N, 2) array of x, y points in COCO
    coordinates (two decimals)."""
    half = size / 2
    if kind == 'square':
        angle = rng.uniform(0, np.pi / 2)
        corners = [angle + k * np.pi / 2 for k in range(4)]
        points = [(cx + half * np.sqrt(2) * np.cos(a),
                   cy + half * np.sqrt(2) * np.sin(a)) for a in corners]
    elif kind == 'triangle':
        angle = rng.uniform(0, 2 * np.pi)
        corners = [angle + k * 2 * np.pi / 3 for k in range(3)]
        points = [(cx + half * 1.2 * np.cos(a), cy + half * 1.2 * np.sin(a))
                  for a in corners]
    else:  # disc
        points = cv2.ellipse2Poly((int(cx), int(cy)), (int(half), int(half)),
                                  0, 0, 360, 10)
    return np.round(np.asarray(points, dtype=np.float64), 2)


def polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (H, W) uint8 mask of ``polygon`` as COCO tools decode it
    (mmdet's ``LoadAnnotations._poly2mask``)."""
    from pycocotools import mask as mask_utils
    rles = mask_utils.frPyObjects([polygon.reshape(-1).tolist()], height,
                                  width)
    return mask_utils.decode(mask_utils.merge(rles))


def _background(rng: np.random.RandomState, height: int,
                width: int) -> np.ndarray:
    """Smooth colour gradient plus noise, so shapes are not trivially the
    only non-flat pixels."""
    base = rng.randint(0, 256, size=3)
    ramp = np.linspace(-40, 40, width)[None, :, None] * rng.choice([-1, 1])
    noise = rng.normal(0, 12, size=(height, width, 3))
    image = base[None, None, :] + ramp + noise
    return np.clip(image, 0, 255).astype(np.uint8)


def _place_shapes(rng, height, width, max_shapes, size_range):
    """Random non-overlapping (kind, cx, cy, size) placements."""
    placed: List[Tuple[str, float, float, float]] = []
    count = rng.randint(1, max_shapes + 1)
    for _ in range(count * 20):
        if len(placed) == count:
            break
        size = rng.uniform(*size_range)
        margin = size * 0.65
        cx = rng.uniform(margin, width - margin)
        cy = rng.uniform(margin, height - margin)
        if all(
                np.hypot(cx - x, cy - y) > 0.65 * (size + s) + 4
                for _, x, y, s in placed):
            placed.append((CLASSES[rng.randint(len(CLASSES))], cx, cy, size))
    return placed


def _draw_image(rng, image_id, height, width, max_shapes, size_range):
    """One image and its COCO annotations (ids filled in by the caller)."""
    image = _background(rng, height, width)
    annotations = []
    for kind, cx, cy, size in _place_shapes(rng, height, width, max_shapes,
                                            size_range):
        polygon = _shape_polygon(rng, kind, cx, cy, size)
        colour = [int(c) for c in rng.randint(0, 256, size=3)]
        # Keep shapes visible against the local background.
        if np.abs(np.array(colour) - image[int(cy), int(cx)]).sum() < 150:
            colour = [255 - c for c in colour]
        mask = polygon_mask(polygon, height, width)
        if not mask.any():
            continue
        image[mask.astype(bool)] = colour
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        annotations.append(
            dict(
                image_id=image_id,
                category_id=CLASSES.index(kind) + 1,
                segmentation=[polygon.reshape(-1).tolist()],
                area=float(mask.sum()),
                bbox=[x0, y0,
                      int(xs.max()) - x0 + 1,
                      int(ys.max()) - y0 + 1],
                iscrowd=0))
    return image, annotations


def write_split(
    out_dir: str,
    split: str,
    num_images: int,
    seed: int,
    image_size: Tuple[int, int] = (128, 128),
    max_shapes: int = 3,
    size_range: Tuple[float, float] = (24, 56)) -> Dict:
    """Write ``<out_dir>/<split>/*.png`` and
    ``<out_dir>/annotations/instances_<split>.json``; return the COCO dict."""
    height, width = image_size
    rng = np.random.RandomState(seed)
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image_id = index + 1
        image, anns = _draw_image(rng, image_id, height, width, max_shapes,
                                  size_range)
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(osp.join(out_dir, split, file_name), image)
        images.append(
            dict(id=image_id, file_name=file_name, height=height, width=width))
        for ann in anns:
            ann['id'] = len(annotations) + 1
            annotations.append(ann)
    coco = dict(
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=name, supercategory='shape')
            for i, name in enumerate(CLASSES)
        ])
    with open(
            osp.join(out_dir, 'annotations', f'instances_{split}.json'),
            'w') as f:
        json.dump(coco, f)
    return coco


def make_synthetic_coco(
    out_dir: str,
    num_train: int = 240,
    num_val: int = 60,
    seed: int = 0,
    image_size: Tuple[int, int] = (128, 128)) -> None:
    """Write a train and a val split (different seeds) under ``out_dir``."""
    write_split(out_dir, 'train', num_train, seed, image_size)
    write_split(out_dir, 'val', num_val, seed + 1, image_size)
