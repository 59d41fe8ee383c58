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

What is exported by task (logits, a segmentor's logits map, a detector's
backbone + neck features), and the size guard a ``--dynamic`` graph keeps
for SMT's 32x32 minimum: :mod:`smt_mm.deployment.onnx_export`. The data
preprocessor stays outside the graph; the summary prints mean, std and
channel order.

The file is checked with onnxruntime (CPU) against PyTorch at the export
size and, with ``--dynamic``, at a second size and batch
(:mod:`smt_mm.deployment.onnx_check`); a file that differs by more than
``--atol`` is not written. A fixed-shape export accepts only its own
size, and ``--shape`` below 32 is refused.

Needs the ``deploy`` extra: ``pip install -e ".[deploy]"``.
"""
import argparse
import os.path as osp
from typing import Dict

import smt_mm  # noqa: F401  (registers SMT in the model registries)
from smt_mm.apis import build_model
from smt_mm.deployment.exportable import make_exportable
from smt_mm.deployment.onnx_check import reference_checks
from smt_mm.deployment.onnx_export import (MAX_OPSET, MIN_OPSET, TASK_NAMES,
                                           ExportWrapper, check_backbone,
                                           export_metadata, output_names,
                                           require_onnx, write_checked)
from smt_mm.deployment.onnx_graph import graph_io
from smt_mm.deployment.preprocessing import preprocessing_note
from smt_mm.deployment.shapes import export_shape
from smt_mm.errors import LaunchError
from smt_mm.files import check_input_file, check_output_file
from smt_mm.launch.cli import add_cfg_options, run_cli
from smt_mm.launch.config import load_config, task_of
from smt_mm.models import SMT

RANDOM_WARNING = ('warning: RANDOM WEIGHTS exported (no checkpoint): the '
                  'file tries the export, its outputs mean nothing')


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


def check_out_path(out: str, overwrite: bool) -> None:
    check_output_file(out, '--out', overwrite=overwrite)
    folder = osp.dirname(osp.abspath(out))
    if not osp.isdir(folder):
        raise LaunchError(f'output folder not found: {folder}')


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
    check_input_file(checkpoint, 'checkpoint', 'checkpoint file')
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


def summary(args, cfg, task: str, shape, shape_note: str,
            changes: Dict[str, str]) -> Dict[str, str]:
    """What was exported, read back from the written file."""
    min_size = SMT.min_input_size
    weights = 'RANDOM (no checkpoint)' if args.checkpoint is None \
        else args.checkpoint
    lines = {
        'exported': args.out,
        'task': f'{TASK_NAMES[task]} ({args.config}, weights: {weights})',
        'exporter': f'torch.onnx.export(dynamo={args.dynamo}), '
        f'opset {args.opset}',
        **graph_io(args.out),
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


def print_summary(summary: Dict[str, str], results) -> None:
    for key, value in summary.items():
        print(f'{key + ":":<16}{value}')
    for size, shapes, diff in results:
        outs = ', '.join('x'.join(map(str, s)) for s in shapes)
        print(f'{"check:":<16}input {size} -> {outs}: max diff {diff:.2e}')


def main(argv=None):
    args = parse_args(argv)
    require_onnx(args.dynamo)
    check_out_path(args.out, args.overwrite)
    check_options(args, SMT.min_input_size)
    args.checkpoint = check_weights(args.checkpoint, args.random_weights)
    cfg = load_config(args.config, args.cfg_options)
    task = task_of(cfg)
    model = build_model(cfg, args.checkpoint)
    check_backbone(model)
    shape, shape_note = export_shape(cfg, task, args.shape)
    wrapper = ExportWrapper(model, task).eval()
    # PyTorch's outputs come from the model before its pools are swapped.
    checks = reference_checks(wrapper, shape, args.dynamic)
    names = output_names(task, len(checks[0][1]))
    changes = make_exportable(model, args.dynamic, args.opset)
    info = export_metadata(cfg, task, args.config, args.checkpoint, shape)
    results = write_checked(
        wrapper,
        checks,
        names,
        info,
        args.out,
        opset=args.opset,
        dynamic=args.dynamic,
        dynamo=args.dynamo,
        atol=args.atol)
    print_summary(
        summary(args, cfg, task, shape, shape_note, changes), results)
    if args.checkpoint is None:
        print(RANDOM_WARNING)
    return results


if __name__ == '__main__':
    run_cli(main)
