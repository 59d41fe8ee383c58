# Copyright (c) SMT-MM contributors. All rights reserved.
"""Is this machine ready for SMT-MM? Run it first on a new node:

    python tools/misc/selfcheck.py                # GPU when there is one
    python tools/misc/selfcheck.py --device cpu   # the CPU checks only

One line each: versions, the device, then the checks (``ok`` / ``FAIL``):
mmcv's ops load (on a GPU: and hold kernels for its architecture); nms and
RoIAlign on the device's tensors (on a GPU: equal to the CPU's); SMT forward
and backward (on a GPU: equal to the CPU's in fp32); bf16 and, on a GPU,
fp16 autocast train steps stay finite; the train-step throughput of SMT-T
for ``--seconds`` (bf16 or fp16 autocast on a GPU, fp32 on the CPU).
Without CUDA the CPU checks run and the GPU ones are reported as skipped.
Exits 1 when a check fails (one ``FAIL`` line each, then a summary).
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(
    osp.dirname(osp.dirname(
        osp.abspath(__file__)))))  # run from a checkout without installing
from smt_mm.checks import machine  # noqa: E402

ARCHS = ('tiny', 'small', 'base', 'large')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check that this machine can train SMT models.')
    parser.add_argument(
        '--device',
        default='auto',
        help="'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument(
        '--arch',
        default='tiny',
        choices=ARCHS,
        help='SMT preset of the throughput figure')
    parser.add_argument(
        '--batch',
        type=int,
        default=None,
        help='throughput batch (default: 64 on a GPU, 8 on the CPU)')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument(
        '--seconds',
        type=float,
        default=10.,
        help='length of the throughput run; 0 leaves it out')
    args = parser.parse_args(argv)
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device!r}: not a device; use 'auto', "
                     "'cpu', 'cuda' or 'cuda:N'")
    if device.type not in ('cpu', 'cuda'):
        parser.error(f'--device {args.device}: use cpu or cuda[:N]')
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            parser.error(f'--device {args.device}: '
                         f'{machine.cuda_unavailable_reason()}; use '
                         '--device cpu for the CPU checks')
        index = device.index or 0
        if index >= torch.cuda.device_count():
            parser.error(f'--device {args.device}: only '
                         f'{torch.cuda.device_count()} CUDA device(s) '
                         f'(cuda:0-cuda:{torch.cuda.device_count() - 1})')
        device = torch.device('cuda', index)
        torch.cuda.set_device(device)
    args.device = device
    for name in ('batch', 'size'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be at least 1 (got {value})')
    if args.seconds < 0:
        parser.error(f'--seconds must be 0 or more (got {args.seconds})')
    if args.batch is None:
        args.batch = 64 if device.type == 'cuda' else 8
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = args.device
    print(f'{"versions":<17} {machine.versions()}', flush=True)
    print(f'{"device":<17} {machine.device_line(device)}', flush=True)
    for key, value in machine.env_summary().items():
        print(f'{"env":<17} {key}={value}')
    checks = machine.checks_for(device, args.arch, args.batch, args.size,
                                args.seconds)
    failed = machine.run_checks(checks)
    skipped = ''
    if device.type != 'cuda':
        reason = machine.cuda_unavailable_reason() \
            if not torch.cuda.is_available() else 'run with --device cpu'
        todo = '; '.join(machine.skipped_on_cpu().values())
        print(f'{"skip  gpu":<17} GPU checks skipped ({reason}): {todo}')
        skipped = '; GPU checks skipped'
    if failed:
        print(f'selfcheck FAILED: {len(failed)} of {len(checks)} checks '
              f'({", ".join(failed)})')
        return 1
    print(f'selfcheck passed: {len(checks)} checks ok on {device}{skipped}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
