# Copyright (c) SMT-MM contributors. All rights reserved.
"""Export a config's model to ONNX and check it against PyTorch.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT \\
        --out model.onnx [--shape H W] [--dynamic] [--opset N]
    python tools/deployment/export_onnx.py CONFIG --random-weights \\
        --out try.onnx    # the export alone, with meaningless weights

The input size is --shape, else what the config's test pipeline gives
(e.g. 32x32 for the digits classifier, 224x224 after ImageNet's crop,
the crop size for segmentors), rounded up to the data preprocessor's
padding; the summary says where it came from.

What is exported, by the config's task:

* classification (mmpretrain): the class logits (no softmax);
* segmentation (mmseg): the logits map of ``encode_decode``, resized to
  the input size;
* detection (mmdet): the backbone + neck feature maps (``extract_feat``);
  the heads' post-processing (RoI ops, NMS) needs custom ONNX operators.

The data preprocessor stays outside the graph: the input is the
normalised image (``(img - mean) / std`` in the preprocessor's channel
order, padded as it pads); the summary prints mean, std and order.

The file is checked with onnxruntime (CPU) against PyTorch at the export
size and, with ``--dynamic``, at a second size and batch. The difference
is the largest absolute error divided by ``max(1, largest |output|)``:
absolute for outputs within [-1, 1], relative to the output's scale
above. A file that differs by more than ``--atol`` is not written.

SMT refuses inputs smaller than 32x32 (``SMT.min_input_size``); traced
into ONNX the check would vanish. With ``--dynamic`` the graph keeps it:
a guard node named ``input_height_and_width_must_be_at_least_32`` makes
onnxruntime fail such a run (ONNX has no assert operator), and the tool
checks that it does. A fixed-shape export accepts only its own size,
and ``--shape`` below 32 is refused.

Needs the ``deploy`` extra: ``pip install -e ".[deploy]"``.
"""
import argparse
import importlib
import logging
import os
import os.path as osp
import warnings
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import MMLogger

import smt_mm  # noqa: F401  (registers SMT in the model registries)
from smt_mm.errors import LaunchError, SMTError
from smt_mm.models import SMT
from smt_mm.models.backbones.smt import MSA
from smt_mm.utils.cli import add_cfg_options, run_cli
from smt_mm.utils.config import load_config, task_of

INSTALL_HINT = ('pip install -e ".[deploy]" (or pip install -r '
                'requirements/deploy.txt)')
INPUT_NAME = 'input'
GUARD_NAME = 'input_height_and_width_must_be_at_least_{}'
TASK_NAMES = {
    'mmpretrain': 'classification',
    'mmseg': 'segmentation',
    'mmdet': 'detection (backbone + neck)',
}
# (H, W) exported when --shape is not given; segmentation prefers the
# config's crop size.
DEFAULT_SHAPES = {
    'mmpretrain': (224, 224),
    'mmseg': (512, 512),
    'mmdet': (800, 1280),
}
SHAPE_AXES = {0: 'batch', 2: 'height', 3: 'width'}
# SMT's unflatten needs opset 13; 20 is the newest the TorchScript
# exporter of torch 2.13 writes
MIN_OPSET, MAX_OPSET = 13, 20
# the first opset with an export of scaled_dot_product_attention
SDPA_OPSET = 14


class ExportMismatchError(SMTError, RuntimeError):
    """The ONNX model does not compute what the PyTorch model computes."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint file (without one, --random-weights is required)')
    parser.add_argument(
        '--random-weights',
        action='store_true',
        help='export a randomly initialised model, to try the export '
        'itself (its outputs mean nothing); CHECKPOINT "none" means the '
        'same')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input height and width (default: from the test pipeline; '
        'segmentation: the crop size)')
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='dynamic batch, height and width (else fixed to batch 1 and '
        '--shape)')
    parser.add_argument(
        '--opset', type=int, default=17, help='ONNX opset (default 17)')
    parser.add_argument(
        '--dynamo',
        action='store_true',
        help='use the torch.export-based exporter (opset >= 18; much '
        'slower) instead of the TorchScript-based one')
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='largest accepted max |onnx - torch| / max(1, max |torch|) '
        '(default 1e-4)')
    add_cfg_options(parser)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------
# Arguments and requirements
# ----------------------------------------------------------------------
def require_onnx(dynamo: bool = False) -> Tuple:
    """Import ``onnx`` and ``onnxruntime`` (and ``onnxscript`` for the
    dynamo exporter), or fail with the line that installs them."""
    names = ['onnx', 'onnxruntime'] + (['onnxscript'] if dynamo else [])
    try:
        modules = [importlib.import_module(name) for name in names]
    except ImportError as err:
        raise LaunchError(f'ONNX export needs {", ".join(names)} ({err}); '
                          f'install them with {INSTALL_HINT}') from None
    return modules[0], modules[1]


def check_out_path(out: str, overwrite: bool) -> None:
    if osp.exists(out) and not overwrite:
        raise LaunchError(f'{out} exists; pass --overwrite to replace it')
    folder = osp.dirname(osp.abspath(out))
    if not osp.isdir(folder):
        raise LaunchError(f'output folder not found: {folder}')


RANDOM_WARNING = ('warning: RANDOM WEIGHTS exported (no checkpoint): the '
                  'file tries the export, its outputs mean nothing')


def check_weights(checkpoint, random_weights: bool):
    """The checkpoint to load, or None for random weights, which must be
    asked for; says loudly when they are exported."""
    if checkpoint == 'none':
        checkpoint, random_weights = None, True
    if checkpoint is not None and random_weights:
        raise LaunchError('give a CHECKPOINT or --random-weights, not both')
    if checkpoint is None:
        if not random_weights:
            raise LaunchError(
                'no CHECKPOINT given: name the checkpoint to export, or pass '
                '--random-weights to export a randomly initialised model '
                '(to try the export; its outputs mean nothing)')
        print(RANDOM_WARNING)
        return None
    if not osp.isfile(checkpoint):
        raise LaunchError(f'checkpoint not found: {checkpoint}')
    return checkpoint


def check_options(args, min_size: int) -> None:
    if args.dynamo and args.opset < 18:
        raise LaunchError(f'--dynamo exports opset 18 or later (asked for '
                          f'{args.opset}); the opset converter fails on '
                          "SMT's graph below that")
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise LaunchError(f'--opset must be {MIN_OPSET}..{MAX_OPSET}, got '
                          f'{args.opset}')
    if args.shape is not None and min(args.shape) < min_size:
        raise LaunchError(f'--shape {args.shape[0]} {args.shape[1]} is '
                          f'smaller than the minimum input of SMT, '
                          f'{min_size}x{min_size}')


def _pairs(value, order='wh'):
    """(h, w) of an int or a 2-sequence given as (w, h) or (h, w)."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        first, second = map(int, value)
        return (second, first) if order == 'wh' else (first, second)
    return None


def pipeline_shape(cfg, task: str):
    """(h, w) the test pipeline gives an image, and how it was found; None
    when the pipeline leaves the size to the image (no resize or crop).

    Resizing to a fixed ``scale`` gives it (with ``keep_ratio``, a
    landscape image filling it: short side by long side); mmpretrain's
    ``ResizeEdge`` gives a square of its ``scale``; a centre crop gives
    its ``crop_size``.
    """
    from smt_mm.utils.config import innermost_dataset
    loader = cfg.get('test_dataloader') or {}
    pipeline = innermost_dataset(
        loader.get('dataset')
        or {}).get('pipeline') or cfg.get('test_pipeline') or []
    shape, how = None, None
    for step in pipeline:
        kind = str(step.get('type', '')).split('.')[-1]
        if kind == 'Resize' and step.get('scale') is not None:
            found = _pairs(step['scale'])
            if found and step.get('keep_ratio'):
                found = (min(found), max(found))
            if found:
                shape, how = found, f'{kind} {found[1]}x{found[0]}'
        elif kind == 'ResizeEdge' and isinstance(step.get('scale'), int):
            shape, how = _pairs(step['scale']), f'{kind} {step["scale"]}'
        elif kind in ('CenterCrop', 'RandomCrop') and \
                step.get('crop_size') is not None:
            # mmcv's CenterCrop takes (w, h), mmpretrain's RandomCrop (h, w)
            order = 'hw' if kind == 'RandomCrop' and task == 'mmpretrain' \
                else 'wh'
            found = _pairs(step['crop_size'], order)
            if found:
                shape, how = found, f'{kind} {found[1]}x{found[0]}'
    return (shape, how) if shape else (None, None)


def export_shape(cfg, task: str, shape) -> Tuple[Tuple[int, int], str]:
    """The exported (h, w) and where it comes from: ``--shape``, a
    segmentor's crop size, the test pipeline, else the task's default;
    rounded up to the data preprocessor's padding."""
    if shape is not None:
        return tuple(shape), '--shape'
    pre = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    size = pre.get('size')
    if task == 'mmseg' and size is not None:
        return tuple(size), 'the crop size (data_preprocessor.size)'
    found, how = pipeline_shape(cfg, task)
    if found is None:
        return DEFAULT_SHAPES[task], ('the default of the task (the test '
                                      'pipeline sets no size)')
    divisor = pre.get('pad_size_divisor') or 1
    padded = tuple(-(-side // divisor) * divisor for side in found)
    note = f'the test pipeline ({how})'
    if padded != tuple(found):
        note += f', padded to a multiple of {divisor}'
    return padded, note


def second_shape(shape: Tuple[int, int]) -> Tuple[int, int]:
    """Another input size for checking a dynamic export: a different
    aspect ratio, and a width that is not a multiple of 32."""
    return shape[0] + 32, shape[1] + 17


# ----------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------
def _load_weights(model: nn.Module, checkpoint: str) -> None:
    """Read ``checkpoint`` safely and load it into ``model`` strictly (an
    official release file into a classifier too)."""
    from smt_mm.models.utils import load_model_weights
    load_model_weights(model, checkpoint)


def build_model(cfg, task: str, checkpoint: str) -> nn.Module:
    """The config's model in eval mode on the CPU: the checkpoint's
    weights, or the model's own initialisation for ``None``."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, DefaultScope
    backbone = cfg.model.get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict):
        backbone.init_cfg = None  # the checkpoint (or nothing) gives weights
    with DefaultScope.overwrite_default_scope(task):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    if checkpoint is None:
        # mmengine logs every parameter's initialiser at INFO level
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        _load_weights(model, checkpoint)
    return model.eval()


def check_backbone(model: nn.Module) -> None:
    """The size guard and checks assume SMT's input constraints."""
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, SMT):
        raise LaunchError('export_onnx.py exports models with an SMT '
                          f'backbone; this one has '
                          f'{type(backbone).__name__}')


class ExportWrapper(nn.Module):
    """One input tensor in, the task's output tensors out."""

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
    if task == 'mmpretrain' and count == 1:
        return ['logits']
    if task == 'mmseg':
        return ['seg_logits']
    return [f'feat{i}' for i in range(count)]


def dynamic_axes(names: Sequence[str]) -> Dict[str, Dict[int, str]]:
    axes = {INPUT_NAME: SHAPE_AXES}
    for name in names:
        if name == 'logits':
            axes[name] = {0: 'batch'}
        elif name == 'seg_logits':
            axes[name] = SHAPE_AXES
        else:
            axes[name] = {0: 'batch', 2: f'{name}_height', 3: f'{name}_width'}
    return axes


# ----------------------------------------------------------------------
# Pooling that follows the input size
# ----------------------------------------------------------------------
def _adaptive_mean(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Adaptive average pooling of ``x`` to ``size`` along ``dim``, with
    PyTorch's bins ``[floor(i L / size), ceil((i + 1) L / size))``. The
    bounds are computed from ``x.shape``, so a traced graph keeps them as
    functions of the input size."""
    length = x.shape[dim]
    bins = []
    for i in range(size):
        start = (i * length) // size
        end = ((i + 1) * length + size - 1) // size
        index = (slice(None), ) * dim + (slice(start, end), )
        bins.append(x[index].mean(dim, keepdim=True))
    return torch.cat(bins, dim)


class DynamicAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` for export with dynamic height and width.

    ONNX has no adaptive pooling: both exporters turn a pool whose output
    is larger than 1x1 into a fixed-kernel pool for the example's size,
    which is wrong at other sizes (UPerNet's pyramid pooling). A mean over
    a rectangle is the mean over its rows of the means over its columns,
    so this pools the two axes in turn.
    """

    def __init__(self, output_size: Tuple[int, int]):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _adaptive_mean(x, self.output_size[0], x.dim() - 2)
        return _adaptive_mean(x, self.output_size[1], x.dim() - 1)


def use_explicit_attention(model: nn.Module) -> int:
    """Compute SMT's attention as ``softmax(q k^T) v`` instead of with
    ``scaled_dot_product_attention``, which ONNX opsets below 14 lack;
    returns the number of blocks switched."""
    blocks = [m for m in model.modules() if isinstance(m, MSA)]
    for block in blocks:
        block.fused_attn = False
    return len(blocks)


def replace_adaptive_pools(model: nn.Module) -> int:
    """Swap every ``nn.AdaptiveAvgPool2d`` with a fixed output larger than
    1x1 (1x1 exports as a global pool) for the dynamic one; returns how
    many were swapped."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if not isinstance(child, nn.AdaptiveAvgPool2d):
                continue
            size = child.output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            if None in size or size == (1, 1):
                continue
            setattr(parent, name, DynamicAdaptiveAvgPool2d(size))
            swapped += 1
    return swapped


# ----------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------
def export(wrapper: nn.Module, sample: torch.Tensor, path: str,
           names: List[str], opset: int, dynamic: bool, dynamo: bool) -> None:
    """Write the ONNX file of ``wrapper(sample)`` to ``path``."""
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
        # check against PyTorch below is what vouches for the graph.
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(wrapper, (sample, ), path, **kwargs)


def add_size_guard(onnx, model, min_size: int) -> None:
    """Make the graph fail on inputs smaller than ``min_size`` on a side.

    ``ConstantOfShape(min(H, W) - min_size)`` has a negative dimension
    then, which onnxruntime refuses with the node's name in the message;
    the empty (or zero-filled) tensor it makes otherwise sums to 0 and is
    added to the input, which leaves the input unchanged.
    """
    from onnx import TensorProto, helper
    graph = model.graph
    checked = f'{INPUT_NAME}_size_checked'
    for node in graph.node:
        node.input[:] = [checked if n == INPUT_NAME else n for n in node.input]
    int64 = TensorProto.INT64
    guard = [
        helper.make_node('Shape', [INPUT_NAME], ['guard_shape']),
        helper.make_node(
            'Constant', [], ['guard_axes'],
            value=helper.make_tensor('guard_axes_value', int64, [2], [2, 3])),
        helper.make_node('Gather', ['guard_shape', 'guard_axes'],
                         ['guard_hw']),
        helper.make_node(
            'ReduceMin', ['guard_hw'], ['guard_min_side'], keepdims=1),
        helper.make_node(
            'Constant', [], ['guard_min'],
            value=helper.make_tensor('guard_min_value', int64, [1],
                                     [min_size])),
        helper.make_node('Sub', ['guard_min_side', 'guard_min'],
                         ['guard_slack']),
        helper.make_node(
            'ConstantOfShape', ['guard_slack'], ['guard_zeros'],
            name=GUARD_NAME.format(min_size),
            value=helper.make_tensor('guard_zero_value', TensorProto.FLOAT,
                                     [1], [0.])),
        helper.make_node(
            'ReduceSum', ['guard_zeros'], ['guard_zero'], keepdims=0),
        helper.make_node('Add', [INPUT_NAME, 'guard_zero'], [checked]),
    ]
    nodes = guard + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def add_metadata(onnx, model, info: Dict[str, str]) -> None:
    props = {p.key: p.value for p in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, **info})


def set_static_dims(model, reference_outputs: List[Tuple]) -> None:
    """Give output dimensions that are equal in every reference output
    (e.g. the classes of a segmentor, lost through its Resize) their
    value instead of a name."""
    for i, value in enumerate(model.graph.output):
        sizes = [tuple(outputs[i].shape) for outputs in reference_outputs]
        dims = value.type.tensor_type.shape.dim
        for d, dim in enumerate(dims):
            if len({s[d] for s in sizes}) == 1:
                dim.dim_value = sizes[0][d]


def finish_file(onnx, path: str, dynamic: bool, reference_outputs: List[Tuple],
                info: Dict[str, str]) -> None:
    """Add the size guard (dynamic exports), the known output sizes and
    the metadata to the exported file."""
    model = onnx.load(path)
    if dynamic:
        add_size_guard(onnx, model, SMT.min_input_size)
    set_static_dims(model, reference_outputs)
    add_metadata(onnx, model, info)
    onnx.checker.check_model(model)
    onnx.save(model, path)


# ----------------------------------------------------------------------
# Checking the file
# ----------------------------------------------------------------------
def max_difference(onnx_out, torch_out) -> float:
    """Largest absolute error over ``max(1, largest |reference|)``."""
    import numpy as np
    reference = torch_out.numpy()
    if onnx_out.shape != reference.shape:
        return float('inf')
    scale = max(1., float(np.abs(reference).max(initial=0.)))
    return float(np.abs(onnx_out - reference).max(initial=0.)) / scale


def compare(session, inputs: torch.Tensor, expected) -> Tuple[List, float]:
    """Run ``session`` on ``inputs``; its output shapes and the largest
    difference to the PyTorch outputs ``expected``."""
    outputs = session.run(None, {INPUT_NAME: inputs.numpy()})
    diffs = [max_difference(o, e) for o, e in zip(outputs, expected)]
    return [tuple(o.shape) for o in outputs], max(diffs)


def guard_refuses(session, shape: Sequence[int], min_size: int) -> bool:
    """Whether the session refuses an input one pixel below the minimum
    (in height; ``shape`` gives the rest)."""
    small = torch.zeros(*shape[:-2], min_size - 1, shape[-1])
    try:
        session.run(None, {INPUT_NAME: small.numpy()})
    except Exception as err:  # onnxruntime raises its own error types
        return GUARD_NAME.format(min_size) in str(err)
    return False


def check_file(ort, path: str, checks, atol: float):
    """Compare the file with PyTorch on each ``(inputs, outputs)`` of
    ``checks``; returns the session and one result line per check."""
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


# ----------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------
def preprocessing_note(cfg) -> str:
    """What the data preprocessor does, which the graph leaves out."""
    pre = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    rgb = pre.get('to_rgb', pre.get('bgr_to_rgb', False))
    order = 'RGB' if rgb else 'as loaded (BGR with mmcv)'
    note = (f'not in the graph: feed (img - mean) / std with mean '
            f'{pre.get("mean")}, std {pre.get("std")}, channels {order}')
    if pre.get('pad_size_divisor', 1) > 1:
        note += f', padded to a multiple of {pre["pad_size_divisor"]}'
    return note


def print_summary(summary: Dict[str, str], results) -> None:
    for key, value in summary.items():
        print(f'{key + ":":<16}{value}')
    for size, shapes, diff in results:
        outs = ', '.join('x'.join(map(str, s)) for s in shapes)
        print(f'{"check:":<16}input {size} -> {outs}: max diff {diff:.2e}')


def reference_checks(wrapper: nn.Module, shape: Tuple[int, int],
                     dynamic: bool) -> List[Tuple]:
    """Random inputs and PyTorch's outputs: batch 1 at ``shape``, and
    with ``dynamic`` batch 2 at :func:`second_shape` too."""
    sizes = [(1, shape)] + ([(2, second_shape(shape))] if dynamic else [])
    generator = torch.Generator().manual_seed(0)
    checks = []
    with torch.no_grad():
        for batch, (height, width) in sizes:
            inputs = torch.randn(batch, 3, height, width, generator=generator)
            checks.append((inputs, wrapper(inputs)))
    return checks


def write_checked(args, onnx, ort, wrapper, checks, names, info) -> List:
    """Export to a temporary file, finish and check it, then move it to
    ``args.out``; returns the check results."""
    # torch.export specialises a dynamic size seen as 1: export batch 2.
    sample = checks[-1][0] if args.dynamo else checks[0][0]
    tmp = f'{args.out}.tmp'
    try:
        export(wrapper, sample, tmp, names, args.opset, args.dynamic,
               args.dynamo)
        finish_file(onnx, tmp, args.dynamic, [out for _, out in checks], info)
        session, results = check_file(ort, tmp, checks, args.atol)
        if args.dynamic and not guard_refuses(session, checks[0][0].shape,
                                              SMT.min_input_size):
            raise ExportMismatchError(
                f'the size guard did not refuse a {SMT.min_input_size - 1}'
                '-pixel input; nothing written')
        os.replace(tmp, args.out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return results


def export_changes(model: nn.Module, args) -> Dict[str, str]:
    """Swap in exportable equivalents where needed (after PyTorch's
    reference outputs were computed); returns summary lines."""
    changes = {}
    swapped = replace_adaptive_pools(model) if args.dynamic else 0
    if swapped:
        changes['adaptive pools'] = (f'{swapped} exported as per-bin means '
                                     'that follow the input size')
    if args.opset < SDPA_OPSET and use_explicit_attention(model):
        changes['attention'] = ('explicit softmax(q k^T) v (opset < '
                                f'{SDPA_OPSET} has no fused attention)')
    return changes


def _value_shape(value) -> str:
    """``[batch, 3, height, width]``: an ONNX value's dims."""
    dims = value.type.tensor_type.shape.dim
    return '[' + ', '.join(d.dim_param or str(d.dim_value) for d in dims) + ']'


def summary(args, cfg, onnx, task: str, shape, shape_note: str,
            changes: Dict[str, str]) -> Dict[str, str]:
    """What was exported, read back from the written file."""
    graph = onnx.load(args.out).graph
    min_size = SMT.min_input_size
    weights = 'RANDOM (no checkpoint)' if args.checkpoint is None \
        else args.checkpoint
    lines = {
        'exported': args.out,
        'task': f'{TASK_NAMES[task]} ({args.config}, weights: {weights})',
        'exporter': f'torch.onnx.export(dynamo={args.dynamo}), '
        f'opset {args.opset}',
        'input': f'{INPUT_NAME} {_value_shape(graph.input[0])} float32',
        'outputs':
        ', '.join(f'{o.name} {_value_shape(o)}' for o in graph.output),
    }
    lines['export size'] = f'{shape[0]}x{shape[1]}, from {shape_note}'
    if args.dynamic:
        lines['dynamic axes'] = 'batch, height, width'
        lines['min input'] = (f'{min_size}x{min_size}, smaller inputs are '
                              'refused by the graph (checked)')
    else:
        lines['dynamic axes'] = f'none (fixed 1x3x{shape[0]}x{shape[1]})'
    lines['preprocessing'] = preprocessing_note(cfg)
    lines.update(changes)
    lines['difference'] = ('max |onnx - torch| / max(1, max |torch|), '
                           f'accepted <= {args.atol:g}')
    return lines


def main(argv=None):
    args = parse_args(argv)
    onnx, ort = require_onnx(args.dynamo)
    check_out_path(args.out, args.overwrite)
    check_options(args, SMT.min_input_size)
    args.checkpoint = check_weights(args.checkpoint, args.random_weights)
    cfg = load_config(args.config, args.cfg_options)
    task = task_of(cfg)
    model = build_model(cfg, task, args.checkpoint)
    check_backbone(model)
    shape, shape_note = export_shape(cfg, task, args.shape)
    wrapper = ExportWrapper(model, task).eval()
    # PyTorch's outputs come from the model before its pools are swapped.
    checks = reference_checks(wrapper, shape, args.dynamic)
    names = output_names(task, len(checks[0][1]))
    changes = export_changes(model, args)
    info = dict(
        task=task,
        config=osp.basename(args.config),
        checkpoint=osp.basename(args.checkpoint or 'RANDOM WEIGHTS'),
        min_input_size=str(SMT.min_input_size),
        export_size=f'{shape[0]}x{shape[1]}',
        preprocessing=preprocessing_note(cfg))
    results = write_checked(args, onnx, ort, wrapper, checks, names, info)
    print_summary(
        summary(args, cfg, onnx, task, shape, shape_note, changes), results)
    if args.checkpoint is None:
        print(RANDOM_WARNING)
    return results


if __name__ == '__main__':
    run_cli(main)
