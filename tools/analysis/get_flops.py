# Copyright (c) SMT-MM contributors. All rights reserved.
"""Print the parameters and FLOPs of a config's model at an input size.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]]

FLOPs count one multiply-add as one FLOP (mmengine/fvcore convention) and
are given with and without the attention matmuls (q @ k^T, attn @ v): the
SMT paper leaves those out.
"""
import argparse

import smt_mm  # noqa: F401
from smt_mm.apis import DEFAULT_INPUT_SHAPES, build_model
from smt_mm.apis.complexity import count_complexity
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import run_cli
from smt_mm.launch.config import load_config, task_of


def check_shape(shape) -> None:
    """``--shape`` is H or H W, positive; one line otherwise."""
    if shape is None:
        return
    given = ' '.join(map(str, shape))
    if len(shape) > 2:
        raise LaunchError(f'--shape takes H or H W, got {len(shape)} values '
                          f'({given})')
    if min(shape) < 1:
        raise LaunchError(f'--shape must be positive, got {given}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='input H [W]; default 224 (cls), 512x512 '
        '(seg), 1280x800 (det)')
    args = parser.parse_args(argv)
    check_shape(args.shape)
    cfg = load_config(args.config)
    task = task_of(cfg)
    default = DEFAULT_INPUT_SHAPES[task]
    shape = default if args.shape is None else (
        args.shape * 2 if len(args.shape) == 1 else args.shape)[:2]
    result = count_complexity(build_model(cfg), task, tuple(shape))
    print(f'config: {args.config}')
    print(f'input: 3x{shape[0]}x{shape[1]}')
    print(f'params: {result["params"] / 1e6:.2f} M')
    print(f'FLOPs (with attention matmuls): {result["flops"] / 1e9:.2f} G')
    print(f'FLOPs (paper convention, without): '
          f'{result["flops_without_attn_matmul"] / 1e9:.2f} G')
    return result


if __name__ == '__main__':
    run_cli(main)
