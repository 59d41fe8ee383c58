# Copyright (c) SMT-MM contributors. All rights reserved.
"""An exported file run in onnxruntime, and its outputs read: the top
classes of a classifier, the label map of a segmentor."""
import os.path as osp
from typing import List, Sequence, Tuple

import numpy as np

from smt_mm.apis import class_names
from smt_mm.errors import LaunchError


def open_session(path: str):
    """An onnxruntime session on the CPU.

    Args:
        path (str): The ONNX file.

    Returns:
        onnxruntime.InferenceSession: The session.

    Raises:
        LaunchError: onnxruntime is missing, or the file is missing or
            cannot be loaded (one line).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise LaunchError('onnxruntime is not installed: pip install -e '
                          '".[deploy]"') from None
    if not osp.isfile(path):
        raise LaunchError(f'ONNX file not found: {path}')
    try:
        return ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    except Exception as err:  # onnxruntime's own error types
        first = str(err).strip().splitlines()[0]
        raise LaunchError(f'onnxruntime cannot load {path}: {first}') from None


def check_input_shape(session, array: np.ndarray) -> None:
    """Refuse an input a fixed-shape file does not take, in one line
    naming both sizes.

    Args:
        session (onnxruntime.InferenceSession): The session.
        array (np.ndarray): The (N, 3, H, W) input.
    """
    expected = session.get_inputs()[0].shape
    for want, got in zip(expected, array.shape):
        if isinstance(want, int) and want != got:
            size = 'x'.join(map(str, array.shape))
            raise LaunchError(
                f'this ONNX file takes input {expected} but the test '
                f'pipeline gives {size}; export it with --dynamic or '
                f'--shape {array.shape[2]} {array.shape[3]}')


def run(session, array: np.ndarray) -> List[np.ndarray]:
    """Run the session on one input, checked to fit.

    Args:
        session (onnxruntime.InferenceSession): The session.
        array (np.ndarray): The (N, 3, H, W) float32 input.

    Returns:
        list[np.ndarray]: The graph's outputs.
    """
    check_input_shape(session, array)
    name = session.get_inputs()[0].name
    return session.run(None, {name: array})


def output_names(cfg, num_classes: int) -> List[str]:
    """The class names of the config's test dataset
    (:func:`smt_mm.apis.class_names`), else the class indices."""
    return class_names(cfg,
                       num_classes) or [str(i) for i in range(num_classes)]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (shifted by the maximum, so large
    logits do not overflow)."""
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def top_classes(logits: np.ndarray, cfg, topk: int) -> List[Tuple[str, float]]:
    """The most probable classes of the first image.

    Args:
        logits (np.ndarray): (N, num_classes) classifier output.
        cfg (Config): The full config (for the class names).
        topk (int): How many classes.

    Returns:
        list[tuple]: ``(name, probability)``, most probable first.
    """
    probs = softmax(logits[0].astype(np.float64))
    names = output_names(cfg, len(probs))
    top = np.argsort(-probs)[:topk]
    return [(names[i], float(probs[i])) for i in top]


def label_shares(label_map: np.ndarray,
                 names: Sequence[str]) -> List[Tuple[str, float]]:
    """The classes of a label map and the share of pixels of each.

    Args:
        label_map (np.ndarray): (H, W) class indices.
        names (Sequence[str]): The class names.

    Returns:
        list[tuple]: ``(name, share)`` for each class present, by index.
    """
    labels, counts = np.unique(label_map, return_counts=True)
    return [(names[i], c / label_map.size) for i, c in zip(labels, counts)]


def draw_label_map(image: np.ndarray, label_map: np.ndarray,
                   names: Sequence[str], title: str, path: str) -> None:
    """Draw the image beside the label map predicted for it.

    Args:
        image (np.ndarray): (3, H, W) image in the loader's order (BGR).
        label_map (np.ndarray): (H', W') class indices.
        names (Sequence[str]): The class names.
        title (str): The image panel's title.
        path (str): The PNG to write.
    """
    from smt_mm.visualization import samples
    rgb = np.ascontiguousarray(image.transpose(1, 2, 0)[..., ::-1])
    samples.render([
        samples.Panel(rgb, title),
        samples.Panel(rgb, 'prediction (onnxruntime)', label_map=label_map)
    ],
                   names,
                   path=path)
