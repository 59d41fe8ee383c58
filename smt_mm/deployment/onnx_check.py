# Copyright (c) SMT-MM contributors. All rights reserved.
"""An exported file checked with onnxruntime (CPU) against PyTorch.

The difference is the largest absolute error divided by ``max(1, largest
|output|)``: absolute for outputs within [-1, 1], relative to the output's
scale above.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from smt_mm.errors import SMTError
from .onnx_graph import GUARD_NAME, INPUT_NAME
from .shapes import second_shape


class ExportMismatchError(SMTError, RuntimeError):
    """The ONNX model does not compute what the PyTorch model computes."""


def reference_checks(wrapper: nn.Module, shape: Tuple[int, int],
                     dynamic: bool) -> List[Tuple]:
    """Random inputs and PyTorch's outputs for them.

    Args:
        wrapper (nn.Module): The model as exported (one tensor in).
        shape (tuple): The export size (h, w).
        dynamic (bool): Whether to add batch 2 at
            :func:`~smt_mm.deployment.shapes.second_shape`.

    Returns:
        list[tuple]: ``(inputs, outputs)`` pairs, batch 1 at ``shape``
        first; seeded, so the same on every run.
    """
    sizes = [(1, shape)] + ([(2, second_shape(shape))] if dynamic else [])
    generator = torch.Generator().manual_seed(0)
    checks = []
    with torch.no_grad():
        for batch, (height, width) in sizes:
            inputs = torch.randn(batch, 3, height, width, generator=generator)
            checks.append((inputs, wrapper(inputs)))
    return checks


def max_difference(onnx_out, torch_out: torch.Tensor) -> float:
    """Largest absolute error over ``max(1, largest |reference|)``.

    Args:
        onnx_out (np.ndarray): onnxruntime's output.
        torch_out (torch.Tensor): PyTorch's output.

    Returns:
        float: The difference; infinite when the shapes differ.
    """
    import numpy as np
    reference = torch_out.numpy()
    if onnx_out.shape != reference.shape:
        return float('inf')
    scale = max(1., float(np.abs(reference).max(initial=0.)))
    return float(np.abs(onnx_out - reference).max(initial=0.)) / scale


def compare(session, inputs: torch.Tensor, expected) -> Tuple[List, float]:
    """Run a session and compare its outputs with PyTorch's.

    Args:
        session (onnxruntime.InferenceSession): The exported file.
        inputs (torch.Tensor): The input batch.
        expected (tuple): PyTorch's outputs for ``inputs``.

    Returns:
        tuple: The output shapes and the largest difference.
    """
    outputs = session.run(None, {INPUT_NAME: inputs.numpy()})
    diffs = [max_difference(o, e) for o, e in zip(outputs, expected)]
    return [tuple(o.shape) for o in outputs], max(diffs)


def guard_refuses(session, shape: Sequence[int], min_size: int) -> bool:
    """Whether the session refuses an input one pixel below the minimum.

    Args:
        session (onnxruntime.InferenceSession): The exported file.
        shape (Sequence[int]): An accepted input shape; its height is
            replaced by ``min_size - 1``.
        min_size (int): The smallest side the graph accepts.

    Returns:
        bool: True when the run fails at the size guard.
    """
    small = torch.zeros(*shape[:-2], min_size - 1, shape[-1])
    try:
        session.run(None, {INPUT_NAME: small.numpy()})
    except Exception as err:  # onnxruntime raises its own error types
        return GUARD_NAME.format(min_size) in str(err)
    return False


def check_file(path: str, checks, atol: float):
    """Compare an ONNX file with PyTorch on each check.

    Args:
        path (str): The ONNX file.
        checks (list[tuple]): From :func:`reference_checks`.
        atol (float): The largest difference accepted.

    Returns:
        tuple: The onnxruntime session, and ``(size, output shapes,
        difference)`` for each check.

    Raises:
        ExportMismatchError: A check differs by more than ``atol``.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the guard check fails on purpose
    session = ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])
    results = []
    for inputs, expected in checks:
        shapes, diff = compare(session, inputs, expected)
        size = 'x'.join(map(str, inputs.shape))
        if diff > atol:
            raise ExportMismatchError(
                f'the ONNX model differs from PyTorch by {diff:.3g} at '
                f'input {size} (accepted: {atol:g}); nothing written')
        results.append((size, shapes, diff))
    return session, results
