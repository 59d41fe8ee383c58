# Copyright (c) SMT-MM contributors. All rights reserved.
"""Plot loss and metric curves of one or more training runs as a PNG.

    python tools/analysis/plot_logs.py RUN [RUN ...] [--keys loss bbox_mAP]
        [--legend NAME ...] [--out curves.png] [--overwrite]

A RUN is a work dir (its newest run is used) or an mmengine scalar log
(``WORK_DIR/<time>/vis_data/scalars.json``, one JSON object per logged
step). A key matches a logged name exactly or its last part (``bbox_mAP``
matches ``coco/bbox_mAP``). Each key gets its own panel with one curve per
run and a legend; its x axis is what mmengine logged the value against:
the iteration for training values, the epoch (epoch-based schedules) or the
iteration (iteration-based ones) for validation metrics.
"""
import argparse
import glob
import json
import os.path as osp

from smt_mm.errors import LaunchError
from smt_mm.files import check_output_file
from smt_mm.launch.cli import run_cli

DEFAULT_KEYS = ('loss', 'bbox_mAP', 'segm_mAP', 'mIoU', 'accuracy/top1')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'logs', nargs='+', help='work dirs or scalars.json files')
    parser.add_argument(
        '--keys',
        nargs='+',
        help='scalars to plot '
        f'(default: those of {", ".join(DEFAULT_KEYS)} '
        'that were logged)')
    parser.add_argument(
        '--legend',
        nargs='+',
        help='one name per run (default: the work dir names)')
    parser.add_argument('--out', default='curves.png', help='PNG to write')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    parser.add_argument('--title', help='figure title')
    args = parser.parse_args(argv)
    if args.legend and len(args.legend) != len(args.logs):
        parser.error(f'--legend needs one name per run: {len(args.logs)} '
                     f'runs, {len(args.legend)} names')
    return args


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
    """{name: (x axis name, [steps], [values])} from a JSON-lines scalar
    log. Training records carry ``iter`` (their step is the iteration);
    validation records do not, and their step is the epoch when the
    training records carry an ``epoch``, else the iteration."""
    records = []
    with open(log) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                record = None
            if not isinstance(record, dict):
                raise LaunchError(f'{log} line {number} is not a JSON object '
                                  '(mmengine writes one per line)')
            records.append((number, record))
    by_epoch = any('epoch' in r and 'iter' in r for _, r in records)
    series = {}
    for number, record in records:
        step = record.get('step', record.get('iter', number))
        axis = 'iteration' if 'iter' in record or not by_epoch else 'epoch'
        for name, value in record.items():
            if name in ('step', 'iter', 'epoch') or \
                    not isinstance(value, (int, float)):
                continue
            _, steps, values = series.setdefault(name, (axis, [], []))
            steps.append(step)
            values.append(value)
    return series


def match_keys(runs: dict, keys) -> list:
    """Logged names for ``keys`` (exact name or last ``/`` part) in any of
    the runs."""
    series = {name: None for run in runs.values() for name in run}
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


def plot(runs: dict, names: list, out: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(
        len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        axis_names = set()
        for label, series in runs.items():
            if name not in series:
                continue
            axis, steps, values = series[name]
            axis_names.add(axis)
            ax.plot(
                steps,
                values,
                label=label,
                marker='o' if len(steps) < 30 else None)
        ax.set_ylabel(name)
        ax.set_xlabel(' / '.join(sorted(axis_names)))
        # epochs and iterations are counts: no ticks at 1.2, 1.4
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run_label(path: str, log: str) -> str:
    """The work dir's name (the folder above ``<time>/vis_data``)."""
    if osp.isdir(path):
        return osp.basename(osp.normpath(path))
    return osp.basename(osp.dirname(osp.dirname(osp.dirname(log)))) or log


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.out, '--out', overwrite=args.overwrite)
    runs = {}
    for i, path in enumerate(args.logs):
        log = find_log(path)
        label = args.legend[i] if args.legend else run_label(path, log)
        while label in runs:  # two runs of the same name
            label += "'"
        runs[label] = read_scalars(log)
    names = match_keys(runs, args.keys)
    plot(runs, names, args.out, args.title)
    print(f'plotted {", ".join(names)} of {len(runs)} run(s) to {args.out}')


if __name__ == '__main__':
    run_cli(main)
