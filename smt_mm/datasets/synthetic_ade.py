# Copyright (c) SMT-MM contributors. All rights reserved.
"""A small synthetic ADE20K-format semantic segmentation dataset.

Layout as ADE20K: ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png`` whose pixel values are class
index + 1 (0 is "other", ignored with ``reduce_zero_label=True``). Each
image is a textured background (class ``ground``) with a few regions of the
other classes, each with its own texture, so the network has to use both
shape and texture. Deterministic for a given seed; no download.
"""
import os
import os.path as osp
from typing import Tuple

import cv2
import numpy as np

CLASSES = ('ground', 'disc', 'stripes', 'checker')


def _texture(rng, kind: str, height: int, width: int) -> np.ndarray:
    """A full-size texture for one class (colours vary per image)."""
    colour = rng.randint(40, 216, size=3).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 'stripes':
        period = rng.uniform(6, 10)
        angle = rng.uniform(0, np.pi)
        phase = np.cos(angle) * xs + np.sin(angle) * ys
        pattern = (np.sin(2 * np.pi * phase / period) > 0)[..., None]
        image = np.where(pattern, colour, 255 - colour)
    elif kind == 'checker':
        cell = rng.randint(4, 8)
        pattern = (((ys // cell) + (xs // cell)) % 2 == 0)[..., None]
        image = np.where(pattern, colour, colour * 0.4)
    elif kind == 'disc':
        image = np.broadcast_to(colour, (height, width, 3)).copy()
    else:  # ground: smooth noise
        noise = cv2.GaussianBlur(
            rng.normal(0, 40, size=(height, width, 3)).astype(np.float32),
            (0, 0), 3)
        image = colour + noise
    image = image + rng.normal(0, 6, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _region_mask(rng, kind: str, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    size = rng.uniform(0.2, 0.4) * min(height, width)
    cx, cy = rng.uniform(size / 2, width - size / 2), rng.uniform(
        size / 2, height - size / 2)
    if kind == 'disc':
        cv2.circle(mask, (int(cx), int(cy)), int(size / 2), 1, -1)
    else:
        angle = rng.uniform(0, 90)
        box = cv2.boxPoints(
            ((cx, cy), (size, size * rng.uniform(0.6, 1.4)), angle))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    return mask.astype(bool)


def _draw_sample(rng, height: int, width: int):
    image = _texture(rng, 'ground', height, width)
    label = np.ones((height, width), np.uint8)  # ground = class 0 -> 1
    kinds = CLASSES[1:]
    for _ in range(rng.randint(1, 4)):
        kind = kinds[rng.randint(len(kinds))]
        mask = _region_mask(rng, kind, height, width)
        image[mask] = _texture(rng, kind, height, width)[mask]
        label[mask] = CLASSES.index(kind) + 1
    return image, label


def write_split(out_dir: str,
                split: str,
                num_images: int,
                seed: int,
                image_size: Tuple[int, int] = (128, 128)) -> None:
    """Write ``num_images`` image/label pairs of one split."""
    rng = np.random.RandomState(seed)
    img_dir = osp.join(out_dir, 'images', split)
    ann_dir = osp.join(out_dir, 'annotations', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for index in range(num_images):
        image, label = _draw_sample(rng, *image_size)
        name = f'synth_{split}_{index:05d}'
        cv2.imwrite(
            osp.join(img_dir, name + '.jpg'), image,
            [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(osp.join(ann_dir, name + '.png'), label)


def make_synthetic_ade(
    out_dir: str,
    num_train: int = 200,
    num_val: int = 50,
    seed: int = 0,
    image_size: Tuple[int, int] = (128, 128)) -> None:
    """Write the training and validation splits under ``out_dir``."""
    write_split(out_dir, 'training', num_train, seed, image_size)
    write_split(out_dir, 'validation', num_val, seed + 1, image_size)
