# Copyright (c) SMT-MM contributors. All rights reserved.
"""smt_mm.datasets.synthetic_coco: each annotation's mask, as mmdet's
``LoadAnnotations`` decodes the stored polygon, is the shape drawn in the
image (centroid within 0.5 px, area within 3 %), and box and area agree."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from smt_mm.datasets.synthetic_coco import make_synthetic_coco


@pytest.fixture(scope='module')
def split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_coco'))
    make_synthetic_coco(root, num_train=6, num_val=1, seed=5)
    with open(osp.join(root, 'annotations', 'instances_train.json')) as f:
        return root, json.load(f)


def decoded_masks(image_info, anns):
    """The instance masks mmdet's loading makes of the annotations."""
    from mmdet.datasets.transforms import LoadAnnotations
    results = dict(
        ori_shape=(image_info['height'], image_info['width']),
        instances=[
            dict(
                bbox=[0, 0, 1, 1],
                bbox_label=0,
                mask=a['segmentation'],
                ignore_flag=0) for a in anns
        ])
    load = LoadAnnotations(with_bbox=False, with_mask=True, poly2mask=True)
    return load.transform(results)['gt_masks'].masks.astype(bool)


def drawn_shape(image, mask):
    """The pixels around ``mask`` that have the colour painted inside it
    (the most common colour there), from the image alone."""
    colours, counts = np.unique(
        image[mask].reshape(-1, 3), axis=0, return_counts=True)
    colour = colours[counts.argmax()]
    near = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return near & np.all(image == colour, axis=-1)


def centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_masks_line_up_with_the_drawn_shapes(split):
    root, coco = split
    checked = 0
    for info in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == info['id']]
        image = cv2.imread(osp.join(root, 'train', info['file_name']))
        for ann, mask in zip(anns, decoded_masks(info, anns)):
            shape = drawn_shape(image, mask)
            offset = centroid(mask) - centroid(shape)
            assert np.abs(offset).max() <= 0.25, (info, ann["id"], offset)
            assert abs(mask.sum() / shape.sum() - 1) <= 0.03, ann['id']
            assert ann['area'] == pytest.approx(mask.sum(), rel=0.03)
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(),
                                                    xs.max(), ys.max())
            checked += 1
    assert checked >= 6
