# Copyright (c) SMT-MM contributors. All rights reserved.
"""Effective receptive field (ERF) of each SMT stage.

The ERF of a stage is how much each input pixel moves the stage's output at
the centre of its map: the gradient of that output with respect to the
input, in absolute value, summed over the input channels and averaged over
images. The output at the centre is the sum of its ReLU'd channels, as in
the ERF literature: a plain channel sum of a LayerNorm output (every stage
ends with one) is nearly constant and has almost no gradient.
"""
from typing import Dict, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .mixers import forward_hooks

FRACTIONS = (0.2, 0.5, 0.99)


def _stage_modules(backbone):
    return [(i + 1, stage) for i, stage in enumerate(backbone.stages)]


def _centre(feature: torch.Tensor) -> torch.Tensor:
    """Sum of the ReLU'd channels at the centre of a (1, C, H, W) map."""
    height, width = feature.shape[-2:]
    return F.relu(feature[0, :, height // 2, width // 2]).sum()


def image_erf(backbone, image: torch.Tensor) -> Dict[int, tuple]:
    """Per stage (from 1), the (H, W) map of |d centre output / d input|
    summed over channels, for one (1, 3, H, W) input, and the (h, w) of
    the stage's map."""
    features = {}

    def make_hook(stage):

        def hook(module, args, output):
            features[stage] = output

        return hook

    image = image.detach().clone().requires_grad_(True)
    with forward_hooks(_stage_modules(backbone), make_hook):
        backbone(image)
    stages = sorted(features)
    scores = {}
    for stage in stages:
        grad, = torch.autograd.grad(
            _centre(features[stage]), image, retain_graph=stage != stages[-1])
        scores[stage] = (grad[0].abs().sum(dim=0),
                         tuple(features[stage].shape[-2:]))
    return scores


def average_erf(backbone, images: Iterable[torch.Tensor]):
    """:func:`image_erf` averaged over ``images`` (each (1, 3, H, W)):
    per stage, the mean map and the stage's (h, w)."""
    total, count = {}, 0
    for image in images:
        for stage, (score, stage_hw) in image_erf(backbone, image).items():
            total[stage] = (total.get(stage, (0, ))[0] + score, stage_hw)
        count += 1
    return {
        stage: (score / count, stage_hw)
        for stage, (score, stage_hw) in total.items()
    }


def centre_of(stage_hw, input_hw):
    """Input pixel (row, col) at the middle of the centre output cell."""
    return tuple(
        int((size // 2 + 0.5) * full / size)
        for size, full in zip(stage_hw, input_hw))


def square_sides(score: np.ndarray,
                 centre,
                 fractions: Sequence[float] = FRACTIONS) -> Dict[float, int]:
    """Side (pixels, odd) of the smallest square around ``centre`` holding
    each fraction of the map's total; squares are clipped to the map, so
    the side is at most the map's longer side."""
    height, width = score.shape
    # summed-area table: box sums in O(1) per square
    table = np.zeros((height + 1, width + 1))
    table[1:, 1:] = score.astype(np.float64).cumsum(0).cumsum(1)
    total = table[-1, -1]
    if not total > 0:
        raise RuntimeError('the ERF is zero everywhere: no gradient reached '
                           'the input')
    row, col = centre
    sides, pending = {}, sorted(fractions)
    for radius in range(max(height, width)):
        top, left = max(row - radius, 0), max(col - radius, 0)
        bottom = min(row + radius + 1, height)
        right = min(col + radius + 1, width)
        mass = (
            table[bottom, right] - table[top, right] - table[bottom, left] +
            table[top, left])
        while pending and mass >= pending[0] * total * (1 - 1e-9):
            sides[pending.pop(0)] = min(2 * radius + 1, max(height, width))
        if not pending:
            break
    return sides
