# Copyright (c) SMT-MM contributors. All rights reserved.
"""The config's preprocessing, which an exported graph leaves out: the test
pipeline, then the data preprocessor done in numpy (the part to copy into
an application)."""
from typing import Dict

import numpy as np

from smt_mm.launch.config import task_of


def preprocessor_cfg(cfg) -> Dict:
    """The config's data preprocessor settings.

    Args:
        cfg (Config): The full config.

    Returns:
        dict: ``model.data_preprocessor``, else the top-level
        ``data_preprocessor`` (where mmpretrain configs keep it), else
        empty.
    """
    return cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}


def preprocessing_note(cfg) -> str:
    """What the data preprocessor does, which the graph leaves out.

    Args:
        cfg (Config): The full config.

    Returns:
        str: One line naming mean, std, channel order and padding.
    """
    pre = preprocessor_cfg(cfg)
    rgb = pre.get('to_rgb', pre.get('bgr_to_rgb', False))
    order = 'RGB' if rgb else 'as loaded (BGR with mmcv)'
    note = (f'not in the graph: feed (img - mean) / std with mean '
            f'{pre.get("mean")}, std {pre.get("std")}, channels {order}')
    if pre.get('pad_size_divisor', 1) > 1:
        note += f', padded to a multiple of {pre["pad_size_divisor"]}'
    return note


def preprocessor_settings(cfg) -> Dict:
    """The data preprocessor's settings, ready for :func:`normalise`.

    Args:
        cfg (Config): The full config.

    Returns:
        dict: ``mean`` and ``std`` (float32 arrays of 3; 0 and 1 when not
        set), ``to_rgb`` (bool) and ``pad_size_divisor`` (int).
    """
    pre = preprocessor_cfg(cfg)
    mean = pre.get('mean')
    std = pre.get('std')
    return dict(
        mean=np.asarray(mean if mean is not None else [0.] * 3, np.float32),
        std=np.asarray(std if std is not None else [1.] * 3, np.float32),
        to_rgb=bool(pre.get('to_rgb', pre.get('bgr_to_rgb', False))),
        pad_size_divisor=int(pre.get('pad_size_divisor') or 1))


def pipeline_image(cfg, path: str) -> np.ndarray:
    """An image file through the config's test pipeline (annotation
    loading left out), as testing prepares it.

    Args:
        cfg (Config): The full config.
        path (str): The image file.

    Returns:
        np.ndarray: (3, H, W) uint8 in the loader's channel order (BGR
        with mmcv).
    """
    from smt_mm.files import check_image
    from smt_mm.visualization.inputs import inference_pipeline
    check_image(path)
    data = inference_pipeline(cfg, task_of(cfg))(dict(img_path=path))
    return data['inputs'].numpy()


def normalise(image: np.ndarray, settings: Dict) -> np.ndarray:
    """What the data preprocessor does to one image.

    Args:
        image (np.ndarray): (3, H, W) image from :func:`pipeline_image`.
        settings (dict): From :func:`preprocessor_settings`.

    Returns:
        np.ndarray: The (1, 3, H', W') float32 network input: channels
        converted if the preprocessor converts them, ``(x - mean) / std``,
        zero-padded at the bottom and right to the padding divisor.
    """
    x = image.astype(np.float32)
    if settings['to_rgb']:
        x = x[::-1]
    x = (x - settings['mean'][:, None, None]) / settings['std'][:, None, None]
    divisor = settings['pad_size_divisor']
    height, width = x.shape[1:]
    pad_h, pad_w = -height % divisor, -width % divisor
    if pad_h or pad_w:  # mmdet pads the normalised image with zeros
        x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w)))
    return np.ascontiguousarray(x[None])
