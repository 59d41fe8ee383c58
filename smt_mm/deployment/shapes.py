# Copyright (c) SMT-MM contributors. All rights reserved.
"""The input size a model is exported at: given, a segmentor's crop size,
what the config's test pipeline gives, or the task's default."""
from typing import Optional, Sequence, Tuple

from smt_mm.apis import DEFAULT_INPUT_SHAPES
from smt_mm.config_tree import innermost_dataset
from .preprocessing import preprocessor_cfg

Shape = Tuple[int, int]


def _pairs(value, order: str = 'wh') -> Optional[Shape]:
    """(h, w) of a size written as an int or a 2-sequence.

    Args:
        value: An int (a square) or a 2-sequence.
        order (str): How the sequence is written, ``'wh'`` (mmcv) or
            ``'hw'``. Defaults to ``'wh'``.

    Returns:
        tuple | None: (h, w), or None for anything else.
    """
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        first, second = map(int, value)
        return (second, first) if order == 'wh' else (first, second)
    return None


def _step_shape(step, task: str) -> Tuple[Optional[Shape], str]:
    """(h, w) one test-pipeline step gives an image (None when it does not
    fix the size) and the step in words (e.g. ``'Resize 32x32'``)."""
    kind = str(step.get('type', '')).split('.')[-1]
    found = None
    if kind == 'Resize' and step.get('scale') is not None:
        found = _pairs(step['scale'])
        if found and step.get('keep_ratio'):
            # a landscape image filling the scale: short side by long side
            found = (min(found), max(found))
    elif kind == 'ResizeEdge' and isinstance(step.get('scale'), int):
        return _pairs(step['scale']), f'{kind} {step["scale"]}'
    elif kind in ('CenterCrop', 'RandomCrop') and \
            step.get('crop_size') is not None:
        # mmcv's CenterCrop takes (w, h), mmpretrain's RandomCrop (h, w)
        order = 'hw' if kind == 'RandomCrop' and task == 'mmpretrain' \
            else 'wh'
        found = _pairs(step['crop_size'], order)
    return found, f'{kind} {found[1]}x{found[0]}' if found else kind


def pipeline_shape(cfg, task: str):
    """The size the config's test pipeline gives an image.

    Resizing to a fixed ``scale`` gives it (with ``keep_ratio``, a
    landscape image filling it: short side by long side); mmpretrain's
    ``ResizeEdge`` gives a square of its ``scale``; a centre crop gives
    its ``crop_size``. The last step that fixes the size wins.

    Args:
        cfg (Config): The full config.
        task (str): ``'mmpretrain'``, ``'mmseg'`` or ``'mmdet'``.

    Returns:
        tuple: ``((h, w), how)``, how naming the step (e.g. ``'Resize
        32x32'``); ``(None, None)`` when the pipeline leaves the size to
        the image.
    """
    loader = cfg.get('test_dataloader') or {}
    pipeline = innermost_dataset(
        loader.get('dataset')
        or {}).get('pipeline') or cfg.get('test_pipeline') or []
    shape, how = None, None
    for step in pipeline:
        found, step_how = _step_shape(step, task)
        if found:
            shape, how = found, step_how
    return (shape, how) if shape else (None, None)


def export_shape(cfg, task: str,
                 shape: Optional[Sequence[int]]) -> Tuple[Shape, str]:
    """The (h, w) to export at and where it comes from.

    Args:
        cfg (Config): The full config.
        task (str): ``'mmpretrain'``, ``'mmseg'`` or ``'mmdet'``.
        shape (Sequence[int], optional): The size asked for (``--shape``);
            it wins when given.

    Returns:
        tuple: ``((h, w), note)``: the asked size, a segmentor's crop size,
        the test pipeline's size rounded up to the data preprocessor's
        padding, else the task's default; the note says which.
    """
    if shape is not None:
        return tuple(shape), '--shape'
    pre = preprocessor_cfg(cfg)
    size = pre.get('size')
    if task == 'mmseg' and size is not None:
        return tuple(size), 'the crop size (data_preprocessor.size)'
    found, how = pipeline_shape(cfg, task)
    if found is None:
        return DEFAULT_INPUT_SHAPES[task], ('the default of the task (the '
                                            'test pipeline sets no size)')
    divisor = pre.get('pad_size_divisor') or 1
    padded = tuple(-(-side // divisor) * divisor for side in found)
    note = f'the test pipeline ({how})'
    if padded != tuple(found):
        note += f', padded to a multiple of {divisor}'
    return padded, note


def second_shape(shape: Shape) -> Shape:
    """Another input size, to check a dynamic export at.

    Args:
        shape (tuple): The export size (h, w).

    Returns:
        tuple: (h, w) with another aspect ratio and a width that is not a
        multiple of 32 (a stride SMT's stages round).
    """
    return shape[0] + 32, shape[1] + 17
