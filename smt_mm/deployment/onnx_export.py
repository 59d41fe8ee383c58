# Copyright (c) SMT-MM contributors. All rights reserved.
"""A config's model exported to ONNX and checked against PyTorch.

What is exported, by the config's task:

* classification (mmpretrain): the class logits (no softmax);
* segmentation (mmseg): the logits map of ``encode_decode``, resized to
  the input size;
* detection (mmdet): the backbone + neck feature maps (``extract_feat``);
  the heads' post-processing (RoI ops, NMS) needs custom ONNX operators.

The data preprocessor stays outside the graph: the input is the
normalised image (``(img - mean) / std`` in the preprocessor's channel
order, padded as it pads; see :mod:`smt_mm.deployment.preprocessing`).

SMT refuses inputs smaller than 32x32 (``SMT.min_input_size``); traced
into ONNX the check would vanish. A dynamic export keeps it: a guard node
named ``input_height_and_width_must_be_at_least_32`` makes onnxruntime
fail such a run (:func:`~smt_mm.deployment.onnx_graph.add_size_guard`),
and :func:`write_checked` checks that it does. A fixed-shape export
accepts only its own size.
"""
import importlib
import os
import os.path as osp
import warnings
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from smt_mm.errors import LaunchError
from smt_mm.models import SMT
from .onnx_check import ExportMismatchError, check_file, guard_refuses
from .onnx_graph import INPUT_NAME, finish_file
from .preprocessing import preprocessing_note

INSTALL_HINT = ('pip install -e ".[deploy]" (or pip install -r '
                'requirements/deploy.txt)')
TASK_NAMES = {
    'mmpretrain': 'classification',
    'mmseg': 'segmentation',
    'mmdet': 'detection (backbone + neck)',
}
SHAPE_AXES = {0: 'batch', 2: 'height', 3: 'width'}
# SMT's unflatten needs opset 13; 20 is the newest the TorchScript
# exporter of torch 2.13 writes
MIN_OPSET, MAX_OPSET = 13, 20


def require_onnx(dynamo: bool = False) -> Tuple:
    """Import what the export needs, or fail with the line that installs
    it.

    Args:
        dynamo (bool): Whether the torch.export-based exporter is used,
            which needs ``onnxscript`` too. Defaults to False.

    Returns:
        tuple: The ``onnx`` and ``onnxruntime`` modules.
    """
    names = ['onnx', 'onnxruntime'] + (['onnxscript'] if dynamo else [])
    try:
        modules = [importlib.import_module(name) for name in names]
    except ImportError as err:
        raise LaunchError(f'ONNX export needs {", ".join(names)} ({err}); '
                          f'install them with {INSTALL_HINT}') from None
    return modules[0], modules[1]


def check_backbone(model: nn.Module) -> None:
    """Refuse a model whose backbone is not SMT: the size guard and the
    checks assume SMT's input constraints."""
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, SMT):
        raise LaunchError('export_onnx.py exports models with an SMT '
                          f'backbone; this one has '
                          f'{type(backbone).__name__}')


class ExportWrapper(nn.Module):
    """One input tensor in, the task's output tensors out.

    Args:
        model (nn.Module): The config's model.
        task (str): ``'mmpretrain'``, ``'mmseg'`` or ``'mmdet'``.
    """

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if self.task == 'mmpretrain':
            outputs = self.model(inputs, mode='tensor')
            # features (a tuple) when the classifier has no head
            return outputs if isinstance(outputs, tuple) else (outputs, )
        if self.task == 'mmseg':
            # a torch.Size (traced in the export) makes the decode head
            # resize the logits to the input size
            metas = [dict(img_shape=inputs.shape[2:])]
            return (self.model.encode_decode(inputs, metas), )
        return tuple(self.model.extract_feat(inputs))


def output_names(task: str, count: int) -> List[str]:
    """The graph's output names: ``logits``, ``seg_logits`` or
    ``feat0``, ``feat1``, ... for ``count`` feature maps."""
    if task == 'mmpretrain' and count == 1:
        return ['logits']
    if task == 'mmseg':
        return ['seg_logits']
    return [f'feat{i}' for i in range(count)]


def dynamic_axes(names: Sequence[str]) -> Dict[str, Dict[int, str]]:
    """The TorchScript exporter's ``dynamic_axes`` for the input and the
    outputs ``names``: batch, and height and width where they follow the
    input's."""
    axes = {INPUT_NAME: SHAPE_AXES}
    for name in names:
        if name == 'logits':
            axes[name] = {0: 'batch'}
        elif name == 'seg_logits':
            axes[name] = SHAPE_AXES
        else:
            axes[name] = {0: 'batch', 2: f'{name}_height', 3: f'{name}_width'}
    return axes


def export(wrapper: nn.Module, sample: torch.Tensor, path: str,
           names: List[str], opset: int, dynamic: bool, dynamo: bool) -> None:
    """Write the ONNX file of ``wrapper(sample)``.

    Args:
        wrapper (nn.Module): The model as exported (one tensor in).
        sample (torch.Tensor): The example input.
        path (str): The file to write.
        names (list[str]): The output names.
        opset (int): The ONNX opset.
        dynamic (bool): Dynamic batch, height and width.
        dynamo (bool): Use the torch.export-based exporter.
    """
    kwargs = dict(
        input_names=[INPUT_NAME],
        output_names=names,
        opset_version=opset,
        dynamo=dynamo)
    if dynamic and dynamo:
        from torch.export import Dim
        least = SMT.min_input_size
        kwargs['dynamic_shapes'] = ({
            0: Dim('batch'),
            2: Dim('height', min=least),
            3: Dim('width', min=least)
        }, )
    elif dynamic:
        kwargs['dynamic_axes'] = dynamic_axes(names)
    if dynamo:
        kwargs.update(external_data=False, verbose=False)
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter is deprecated but chosen on purpose, and
        # traced shape checks only hold for the example: the numeric
        # check against PyTorch is what vouches for the graph.
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(wrapper, (sample, ), path, **kwargs)


def export_metadata(cfg, task: str, config: str, checkpoint,
                    shape: Tuple[int, int]) -> Dict[str, str]:
    """The metadata written into the file.

    Args:
        cfg (Config): The full config.
        task (str): The config's task.
        config (str): The config file.
        checkpoint (str, optional): The checkpoint; None for random
            weights.
        shape (tuple): The export size (h, w).

    Returns:
        dict: task, config, checkpoint, min_input_size, export_size and
        preprocessing, as strings.
    """
    return dict(
        task=task,
        config=osp.basename(config),
        checkpoint=osp.basename(checkpoint or 'RANDOM WEIGHTS'),
        min_input_size=str(SMT.min_input_size),
        export_size=f'{shape[0]}x{shape[1]}',
        preprocessing=preprocessing_note(cfg))


def export_checked(wrapper: nn.Module,
                   checks: List[Tuple],
                   names: List[str],
                   info: Dict[str, str],
                   path: str,
                   opset: int = 17,
                   dynamic: bool = False,
                   dynamo: bool = False,
                   atol: float = 1e-4) -> List:
    """Export to ``path``, finish the file and check it.

    Args:
        wrapper (nn.Module): The model as exported (one tensor in).
        checks (list[tuple]): From
            :func:`~smt_mm.deployment.onnx_check.reference_checks`.
        names (list[str]): The output names.
        info (dict): Metadata for the file.
        path (str): The ONNX file to write.
        opset (int): The ONNX opset. Defaults to 17.
        dynamic (bool): Dynamic batch, height and width (with the size
            guard, checked to refuse a too small input). Defaults to False.
        dynamo (bool): Use the torch.export-based exporter. Defaults to
            False.
        atol (float): The largest difference accepted. Defaults to 1e-4.

    Returns:
        list[tuple]: ``(size, output shapes, difference)`` per check.

    Raises:
        ExportMismatchError: The file differs from PyTorch, or its size
            guard does not work (the file is left as written).
    """
    require_onnx(dynamo)
    # torch.export specialises a dynamic size seen as 1: export batch 2.
    sample = checks[-1][0] if dynamo else checks[0][0]
    export(wrapper, sample, path, names, opset, dynamic, dynamo)
    finish_file(path, dynamic, [outputs for _, outputs in checks], info)
    session, results = check_file(path, checks, atol)
    if dynamic and not guard_refuses(session, checks[0][0].shape,
                                     SMT.min_input_size):
        raise ExportMismatchError(
            f'the size guard did not refuse a {SMT.min_input_size - 1}'
            '-pixel input; nothing written')
    return results


def write_checked(wrapper: nn.Module, checks: List[Tuple], names: List[str],
                  info: Dict[str, str], out: str, **options) -> List:
    """:func:`export_checked` through a temporary file, so that ``out`` is
    written only by a file that passed the checks.

    Args:
        wrapper (nn.Module): The model as exported (one tensor in).
        checks (list[tuple]): As for :func:`export_checked`.
        names (list[str]): The output names.
        info (dict): Metadata for the file.
        out (str): The ONNX file to write (replaced if it exists).
        **options: ``opset``, ``dynamic``, ``dynamo`` and ``atol`` of
            :func:`export_checked`.

    Returns:
        list[tuple]: ``(size, output shapes, difference)`` per check.
    """
    tmp = f'{out}.tmp'
    try:
        results = export_checked(wrapper, checks, names, info, tmp, **options)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):  # a failed export or check leaves nothing
            os.remove(tmp)
    return results
