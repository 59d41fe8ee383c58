# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/analysis/plot_logs.py: loss and metric curves from mmengine's
scalar log, one axis per curve, runs compared with a legend."""
import json
import sys

import pytest
from helpers import assert_picture, load_tool, run_tool


def write_scalars(work_dir):
    """A scalars.json as mmengine's LocalVisBackend writes it."""
    log = work_dir / '20250101_000000' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    lines = [
        dict(
            lr=1e-3,
            loss=2.0 - 0.1 * i,
            loss_cls=1.0 - 0.05 * i,
            epoch=1 + i // 5,
            iter=10 * (i + 1),
            step=10 * (i + 1)) for i in range(10)
    ]
    lines += [{
        'coco/bbox_mAP': 0.1 * e,
        'coco/segm_mAP': 0.08 * e,
        'step': e
    } for e in (1, 2)]
    log.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return log


def test_plot_logs_writes_png(tmp_path):
    write_scalars(tmp_path / 'work')
    out = tmp_path / 'curves.png'
    proc = run_tool([
        sys.executable, 'tools/analysis/plot_logs.py',
        str(tmp_path / 'work'), '--keys', 'loss', 'bbox_mAP', '--out',
        str(out)
    ])
    assert 'loss, coco/bbox_mAP' in proc.stdout
    assert out.stat().st_size > 1000
    assert_picture(out, min_size=200)


def test_plot_logs_unknown_key(tmp_path):
    log = write_scalars(tmp_path)
    proc = run_tool([
        sys.executable, 'tools/analysis/plot_logs.py',
        str(log), '--keys', 'mIoU', '--out',
        str(tmp_path / 'x.png')
    ],
                    check=False)
    assert proc.returncode == 1
    assert "'mIoU' was not logged" in proc.stderr and 'loss_cls' in \
        proc.stderr


def test_plot_logs_axes_per_curve(tmp_path):
    plot_logs = load_tool('tools/analysis/plot_logs.py')
    series = plot_logs.read_scalars(str(write_scalars(tmp_path)))
    axis, steps, _ = series['loss']
    assert axis == 'iteration' and steps[:2] == [10, 20]
    axis, steps, _ = series['coco/bbox_mAP']
    assert axis == 'epoch' and steps == [1, 2]


def test_plot_logs_compares_runs_with_a_legend(tmp_path, monkeypatch):
    plot_logs = load_tool('tools/analysis/plot_logs.py')
    for name in ('run_a', 'run_b'):
        write_scalars(tmp_path / name)
    drawn = {}

    def fake_plot(runs, names, out, title):
        drawn.update(runs=sorted(runs), names=names)

    monkeypatch.setattr(plot_logs, 'plot', fake_plot)
    plot_logs.main([
        str(tmp_path / 'run_a'),
        str(tmp_path / 'run_b'), '--keys', 'loss', 'bbox_mAP'
    ])
    assert drawn == dict(
        runs=['run_a', 'run_b'], names=['loss', 'coco/bbox_mAP'])
    out = tmp_path / 'two.png'
    run_tool([
        sys.executable, 'tools/analysis/plot_logs.py',
        str(tmp_path / 'run_a'),
        str(tmp_path / 'run_b'), '--legend', 'lr 1e-4', 'lr 2e-4', '--out',
        str(out)
    ])
    assert_picture(out, min_size=200)
    proc = run_tool([
        sys.executable, 'tools/analysis/plot_logs.py',
        str(tmp_path / 'run_a'), '--legend', 'a', 'b'
    ],
                    check=False)
    assert proc.returncode == 2 and 'one name per run' in proc.stderr


def test_plot_logs_epoch_ticks_are_whole_numbers(tmp_path, monkeypatch):
    """Two validation epochs used to get ticks at 1.2, 1.4, ..."""
    plot_logs = load_tool('tools/analysis/plot_logs.py')
    from matplotlib.figure import Figure
    saved = []
    monkeypatch.setattr(Figure, 'savefig',
                        lambda fig, *a, **k: saved.append(fig))
    runs = {'run': plot_logs.read_scalars(str(write_scalars(tmp_path)))}
    plot_logs.plot(runs, ['coco/bbox_mAP', 'loss'], str(tmp_path / 'x.png'),
                   None)
    # one validation epoch: a single point used to get ticks 3.8 .. 4.2
    one = {'run': {'coco/bbox_mAP': ('epoch', [4], [0.3])}}
    plot_logs.plot(one, ['coco/bbox_mAP'], str(tmp_path / 'y.png'), None)
    epoch_ax, iter_ax = saved[0].axes
    assert epoch_ax.get_xlabel() == 'epoch'
    for ax in (epoch_ax, iter_ax, saved[1].axes[0]):
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


@pytest.mark.parametrize('line', ['not json', '[1, 2]', '"text"', '3'])
def test_a_line_that_is_not_a_record_is_one_line(tmp_path, line):
    plot_logs = load_tool('tools/analysis/plot_logs.py')

    from smt_mm.errors import LaunchError
    log = tmp_path / 'scalars.json'
    log.write_text(f'{{"loss": 1.0, "iter": 1}}\n{line}\n')
    with pytest.raises(LaunchError) as err:
        plot_logs.read_scalars(str(log))
    assert str(err.value) == (f'{log} line 2 is not a JSON object (mmengine '
                              'writes one per line)')
