# Copyright (c) SMT-MM contributors. All rights reserved.
"""Speed and memory of the SMT backbone: ours against the official code.

Sides (all with the same weights, built once and copied):

* ``fast``: :class:`smt_mm.models.SMT` as it computes;
* ``official`` (with ``--official PATH``): the official repository's
  ``models/smt.py``, loaded from that path (see
  :mod:`smt_mm.benchmark.official`);
* ``compiled`` (with ``--compile``): ``torch.compile`` of the fast model;
  its compile time (the first calls) is reported separately.

Every side computes the same function: the stage-4 map after its norm,
averaged over positions (the official ``forward_features``); a train step
is forward, backward of a fixed random projection of those features, and
an AdamW step (with a GradScaler for fp16). Before timing, the outputs and
the gradients of every side are compared with the fast side's in fp32.

Measured, per architecture and precision (``fp32``, ``bf16``, ``fp16``:
``torch.autocast``; ``amp`` means bf16 where supported, else fp16):

* forward throughput (images/s): eval, ``no_grad``, ``--batch`` images at
  ``--size``;
* train-step throughput (images/s), same batch;
* forward latency (ms) of one ``--large-size`` image, and the time of one
  train step on ``--large-batch`` images of that size;
* peak memory (MiB) of that forward and of that train step (on the CPU,
  each in a fresh process: see :mod:`smt_mm.benchmark.memory`).

Timings are interleaved: after warm-up, each repetition runs every side once
in turn, so a change of machine load hits all sides alike; the tables give
medians over ``--repeats``. The run also records the fp32 SGEMM rate and
the load average, to compare runs. The measuring is
:func:`smt_mm.benchmark.run.run_benchmark`; this script is its command line.

Examples::

    # the CPU table against the official code
    python tools/analysis/benchmark.py --archs t b \\
        --official PATH/TO/SMT/models/smt.py \\
        --out benchmarks/cpu_results.json --markdown benchmarks/cpu_results.md
    # a quick check (about a minute on 2 CPU cores)
    python tools/analysis/benchmark.py --archs t --repeats 2 --warmup 1 \\
        --batch 2 --large-size 256 320 --no-memory
    # on a GPU: fp32, bf16 and fp16, batch 64, 2 large images per step
    python tools/analysis/benchmark.py --device cuda --batch 64 \\
        --large-batch 2 --precisions fp32 bf16 fp16 --official PATH
"""
import argparse
import json
import os
import os.path as osp

from smt_mm.benchmark.report import markdown_table
from smt_mm.benchmark.run import Settings, run_benchmark
from smt_mm.benchmark.sides import ARCH_NAMES, PRECISIONS
from smt_mm.launch.cli import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark the SMT backbone against the official code.')
    parser.add_argument(
        '--archs',
        nargs='+',
        default=['t', 'b'],
        choices=sorted(ARCH_NAMES) + sorted(ARCH_NAMES.values()))
    parser.add_argument(
        '--device',
        default='auto',
        help="'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when "
        'available)')
    parser.add_argument(
        '--precisions',
        nargs='+',
        default=None,
        choices=PRECISIONS,
        help='default: fp32 on CPU; fp32 bf16 fp16 on GPU')
    parser.add_argument(
        '--official',
        metavar='PATH',
        default=None,
        help="the official repository's models/smt.py, compared as a side")
    parser.add_argument(
        '--compile',
        action='store_true',
        help='add torch.compile of the fast path as a side')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument(
        '--large-size',
        type=int,
        nargs=2,
        default=[800, 1216],
        metavar=('H', 'W'))
    parser.add_argument(
        '--large-batch',
        type=int,
        default=1,
        help='images per train step at --large-size')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (default: torch default)')
    parser.add_argument(
        '--no-cudnn-benchmark',
        action='store_true',
        help='on CUDA, leave cudnn.benchmark off')
    parser.add_argument(
        '--no-memory',
        action='store_true',
        help='skip the peak-memory measurements')
    parser.add_argument(
        '--no-latency',
        action='store_true',
        help='skip the large-image measurements')
    parser.add_argument('--out', default=None, help='write results as JSON')
    parser.add_argument(
        '--markdown', default=None, help='also write the table to this file')
    args = parser.parse_args(argv)
    for name in ('batch', 'size', 'large_batch', 'repeats'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.official and not osp.isfile(args.official):
        parser.error(f'--official: no such file {args.official!r} (the '
                     "official repository's models/smt.py)")
    return args


# arguments passed on to Settings under their own names
SAME_NAMES = ('archs', 'device', 'precisions', 'official', 'compile', 'batch',
              'size', 'large_size', 'large_batch', 'repeats', 'warmup',
              'threads')


def settings_of(args) -> Settings:
    """The package's settings for the command line's arguments."""
    return Settings(
        **{name: getattr(args, name)
           for name in SAME_NAMES},
        cudnn_benchmark=not args.no_cudnn_benchmark,
        memory=not args.no_memory,
        latency=not args.no_latency)


def main(argv=None):
    args = parse_args(argv)
    report = run_benchmark(settings_of(args))
    table = markdown_table(report)
    print(table)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    run_cli(main)
