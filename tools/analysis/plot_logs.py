# Copyright (c) SMT-MM contributors. All rights reserved.
"""Plot loss and metric curves of a training run as a PNG.

    python tools/analysis/plot_logs.py WORK_DIR_OR_JSON [--keys loss bbox_mAP]
        [--out curves.png]

Reads mmengine's scalar log (``WORK_DIR/<time>/vis_data/scalars.json``, one
JSON object per logged step; the newest run of a work dir). A key matches
a logged name exactly or its last part (``bbox_mAP`` matches
``coco/bbox_mAP``). Each key gets its own panel, plotted against the step
mmengine logged (iteration for training values, epoch or iteration for
validation metrics).
"""
import argparse
import glob
import json
import os.path as osp

from smt_mm.errors import LaunchError
from smt_mm.utils.cli import run_cli

DEFAULT_KEYS = ('loss', 'bbox_mAP', 'segm_mAP', 'mIoU', 'accuracy/top1')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('log', help='a work dir or a scalars.json file')
    parser.add_argument(
        '--keys',
        nargs='+',
        help='scalars to plot '
        f'(default: those of {", ".join(DEFAULT_KEYS)} '
        'that were logged)')
    parser.add_argument('--out', default='curves.png', help='PNG to write')
    parser.add_argument('--title', help='figure title (default: the log)')
    return parser.parse_args(argv)


def find_log(path: str) -> str:
    """``path`` itself if a file, else the newest scalars.json under it."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise LaunchError(f'log not found: {path}')
    logs = glob.glob(
        osp.join(path, '**', 'vis_data', 'scalars.json'), recursive=True)
    if not logs:
        raise LaunchError(f'no vis_data/scalars.json under {path} (was it '
                          'trained with LocalVisBackend?)')
    return max(logs, key=osp.getmtime)


def read_scalars(log: str) -> dict:
    """{name: ([steps], [values])} from a JSON-lines scalar log."""
    series = {}
    with open(log) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise LaunchError(f'{log} line {number} is not JSON')
            step = record.get('step', record.get('iter', number))
            for name, value in record.items():
                if name in ('step', 'iter', 'epoch') or \
                        not isinstance(value, (int, float)):
                    continue
                steps, values = series.setdefault(name, ([], []))
                steps.append(step)
                values.append(value)
    return series


def match_keys(series: dict, keys) -> list:
    """Logged names for ``keys`` (exact name or last ``/`` part)."""
    wanted = keys or DEFAULT_KEYS
    names = []
    for key in wanted:
        hits = [n for n in series if n == key or n.split('/')[-1] == key]
        if not hits and keys:
            raise LaunchError(f'{key!r} was not logged; logged: '
                              f'{", ".join(sorted(series))}')
        names += [h for h in hits if h not in names]
    if not names:
        raise LaunchError('none of the default keys was logged; choose with '
                          f'--keys from: {", ".join(sorted(series))}')
    return names


def plot(series: dict, names: list, out: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(
        len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        steps, values = series[name]
        ax.plot(steps, values, marker='o' if len(steps) < 30 else None)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel('step')
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    log = find_log(args.log)
    series = read_scalars(log)
    names = match_keys(series, args.keys)
    plot(series, names, args.out, args.title or log)
    print(f'plotted {", ".join(names)} from {log} to {args.out}')


if __name__ == '__main__':
    run_cli(main)
