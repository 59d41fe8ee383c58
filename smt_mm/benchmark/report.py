# Copyright (c) SMT-MM contributors. All rights reserved.
"""The benchmark's report: ratios between sides, the machine it ran on, and
the markdown table with its notes."""
import os
import platform
from typing import Dict, List, Optional

import torch

from .sides import arch_name

RATIO_KEYS = (  # (result key, higher is better; None: memory, a ÷ b)
    ('forward_img_s', True), ('train_img_s', True), ('latency_ms', False),
    ('large_train_ms', False), ('peak_forward_mib', None), ('peak_train_mib',
                                                            None))
# (a, b) pairs given a ratio row when both sides ran
RATIO_PAIRS = (('fast', 'official'), ('compiled', 'official'), ('compiled',
                                                                'fast'))


def ratios(ours: Dict, base: Dict) -> Dict:
    """Speed-ups of ``ours`` over ``base`` (throughput ratios, inverse
    time ratios) and memory as ours / base; None where a number is
    missing."""
    out = {}
    for key, higher_better in RATIO_KEYS:
        a, b = ours.get(key), base.get(key)
        if a is None or b in (None, 0) or a == 0:
            out[key] = None
        elif higher_better is False:
            out[key] = b / a
        else:
            out[key] = a / b
    return out


def ratio_rows(rows: Dict[str, Dict], arch: str, precision: str) -> List[Dict]:
    """A ratio row for every pair of :data:`RATIO_PAIRS` in ``rows``."""
    return [
        dict(
            arch=arch_name(arch),
            precision=precision,
            impl=f'{a}/{b}',
            ratios=ratios(rows[a], rows[b])) for a, b in RATIO_PAIRS
        if a in rows and b in rows
    ]


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with its logical core count."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU ' \
        f'({os.cpu_count()} logical cores)'


def fmt(value: Optional[float], digits: int = 1, suffix: str = '') -> str:
    """``value`` with ``digits`` decimals, '-' for None."""
    return '-' if value is None else f'{value:.{digits}f}{suffix}'


def caveat(repeats: int) -> Optional[str]:
    """What one or two repeats mean for the numbers, or None."""
    if repeats >= 3:
        return None
    what = 'one timing' if repeats == 1 else 'the median of 2 timings'
    return (f'Caveat: --repeats {repeats}: each number is {what} and each '
            'ratio a quotient of such numbers; on a shared or busy CPU they '
            'move between runs by more than the differences they show. Use '
            '--repeats 3 or more (5 for numbers to quote).')


def _header(env: Dict, st: Dict) -> List[str]:
    h, w = st['large_size']
    lb = st['large_batch']
    return [
        f"Device: {env['device_name']}, torch {env['torch']}, "
        f"{env['threads']} CPU threads; load average before the run "
        f"{env['load_average']}; SGEMM (2048², fp32) "
        f"{env['sgemm_gflops']:.1f} GFLOP/s; medians of {st['repeats']} "
        f"interleaved runs after {st['warmup']} warm-up" +
        ('; cudnn.benchmark on' if env.get('cudnn_benchmark') else '') + '.',
        '',
        f"| arch | precision | impl | fwd img/s (b{st['batch']}, "
        f"{st['size']}²) | train img/s (b{st['batch']}) | fwd ms "
        f"(1×{h}×{w}) | train step ms ({lb}×{h}×{w}) | peak fwd MiB | "
        'peak train MiB |',
        '|---|---|---|---|---|---|---|---|---|',
    ]


def _row(row: Dict) -> str:
    start = f"| {row['arch']} | {row['precision']} | "
    if 'ratios' in row:
        r = row['ratios']
        return start + f"**{row['impl']}** | " + ' | '.join(
            f"**{fmt(r[k], 2, '' if better is None else 'x')}**"
            for k, better in RATIO_KEYS) + ' |'
    return start + f"{row['impl']} | " + ' | '.join([
        fmt(row.get('forward_img_s')),
        fmt(row.get('train_img_s')),
        fmt(row.get('latency_ms')),
        fmt(row.get('large_train_ms')),
        fmt(row.get('peak_forward_mib'), 0),
        fmt(row.get('peak_train_mib'), 0)
    ]) + ' |'


def _notes(report: Dict) -> List[str]:
    lines = [
        '',
        'Ratio rows (**a/b**): throughput and time as speed-ups of a over b '
        '(higher is better), peak memory as a ÷ b (lower is better).',
    ]
    for key, checks in report['equality'].items():
        for side, c in checks.items():
            lines.append(f"- {key}, {side} vs fast (fp32): max |Δ features| "
                         f"{c['max_abs_feature_diff']:.1e} (features up to "
                         f"{c['feature_scale']:.1f}), max relative Δ gradient "
                         f"{c['max_rel_grad_diff']:.1e}")
    for row in report['results']:
        if 'compile_train_s' in row:
            lines.append(
                f"- {row['arch']} {row['precision']} compiled: first calls "
                f"{row['compile_forward_s']:.1f} s (forward), "
                f"{row['compile_train_s']:.1f} s (train step)")
    return lines


def markdown_table(report: Dict) -> str:
    """The report as markdown: the machine, the table, the caveat of few
    repeats, the equality checks and compile times."""
    lines = _header(report['environment'], report['settings'])
    lines += [_row(row) for row in report['results']]
    note = caveat(report['settings']['repeats'])
    if note:
        lines[1:1] = ['', f'**{note}**']
    return '\n'.join(lines + _notes(report))
