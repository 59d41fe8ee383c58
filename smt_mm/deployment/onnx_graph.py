# Copyright (c) SMT-MM contributors. All rights reserved.
"""Edits of an exported ONNX file: SMT's minimum input size kept as a
guard, the output sizes known from the reference outputs, metadata."""
from typing import Dict, List, Tuple

from smt_mm.models import SMT

INPUT_NAME = 'input'
GUARD_NAME = 'input_height_and_width_must_be_at_least_{}'


def add_size_guard(model, min_size: int) -> None:
    """Make the graph fail on inputs smaller than ``min_size`` on a side.

    ONNX has no assert operator: ``ConstantOfShape(min(H, W) - min_size)``
    has a negative dimension then, which onnxruntime refuses with the
    node's name in the message; otherwise the empty (or zero-filled)
    tensor it makes sums to 0 and is added to the input, which leaves the
    input unchanged.

    Args:
        model (onnx.ModelProto): The model, changed in place.
        min_size (int): The smallest height and width accepted.
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


def add_metadata(model, info: Dict[str, str]) -> None:
    """Add ``info`` to the model's metadata (keeping what is there).

    Args:
        model (onnx.ModelProto): The model, changed in place.
        info (dict): Keys and string values.
    """
    from onnx import helper
    props = {p.key: p.value for p in model.metadata_props}
    helper.set_model_props(model, {**props, **info})


def set_static_dims(model, reference_outputs: List[Tuple]) -> None:
    """Give output dimensions that are equal in every reference output
    their value instead of a name (e.g. the classes of a segmentor, which
    the exporter loses through its Resize).

    Args:
        model (onnx.ModelProto): The model, changed in place.
        reference_outputs (list[tuple]): PyTorch's outputs, one tuple of
            tensors per checked input.
    """
    for i, value in enumerate(model.graph.output):
        sizes = [tuple(outputs[i].shape) for outputs in reference_outputs]
        dims = value.type.tensor_type.shape.dim
        for d, dim in enumerate(dims):
            if len({s[d] for s in sizes}) == 1:
                dim.dim_value = sizes[0][d]


def finish_file(path: str, dynamic: bool, reference_outputs: List[Tuple],
                info: Dict[str, str]) -> None:
    """Add the size guard (dynamic exports), the known output sizes and
    the metadata to an exported file, and check it.

    Args:
        path (str): The ONNX file, rewritten.
        dynamic (bool): Whether height and width are dynamic.
        reference_outputs (list[tuple]): As for :func:`set_static_dims`.
        info (dict): Metadata to add.
    """
    import onnx
    model = onnx.load(path)
    if dynamic:
        add_size_guard(model, SMT.min_input_size)
    set_static_dims(model, reference_outputs)
    add_metadata(model, info)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def value_shape(value) -> str:
    """An ONNX value's dims as text.

    Args:
        value (onnx.ValueInfoProto): A graph input or output.

    Returns:
        str: e.g. ``'[batch, 3, height, width]'``.
    """
    dims = value.type.tensor_type.shape.dim
    return '[' + ', '.join(d.dim_param or str(d.dim_value) for d in dims) + ']'


def graph_io(path: str) -> Dict[str, str]:
    """The input and outputs of an ONNX file, as summary lines.

    Args:
        path (str): The ONNX file.

    Returns:
        dict: ``input`` (name, dims, type) and ``outputs`` (names, dims).
    """
    import onnx
    graph = onnx.load(path).graph
    return {
        'input': f'{INPUT_NAME} {value_shape(graph.input[0])} float32',
        'outputs':
        ', '.join(f'{o.name} {value_shape(o)}' for o in graph.output),
    }
