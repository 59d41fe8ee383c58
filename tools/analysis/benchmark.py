# Copyright (c) SMT-MM contributors. All rights reserved.
"""Speed and memory of the SMT backbone: fast path against reference path.

For each architecture (``--archs``) and each implementation (``impl='fast'``
and ``impl='reference'`` of :class:`smt_mm.models.SMT`, same weights) this
measures, in one run:

* forward throughput (images/s): eval mode, ``torch.no_grad``, a batch of
  ``--batch`` (8) images at ``--size`` (224);
* train-step throughput (images/s): train mode, forward, backward of the
  sum of the stage-output means, and an AdamW step, same batch;
* forward latency (ms) of one ``--large-size`` (800x1216) image;
* peak memory (MiB) of that forward and of one train step at that size.

Every timing is the median of ``--repeats`` runs after ``--warmup`` runs.
The same run measures the machine's fp32 SGEMM rate (a 2048x2048 matmul,
GFLOP/s = 2 * 2048^3 / s) and prints beside it the rate the forward pass
achieves: 2 x (multiply-adds of the backbone at ``--size``, counted by
mmengine's FlopAnalyzer with the attention matmuls, as
``smt_mm/utils/complexity.py`` does) x images/s.

Peak memory. On a GPU: ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus the memory allocated before the measured
call (weights, optimizer state that exists already). On the CPU PyTorch keeps
no allocator statistics, so each configuration runs in a fresh subprocess
whose glibc malloc is told (``MALLOC_MMAP_THRESHOLD_``) to give every block
over 128 KiB its own mapping, returned to the system when freed: the
resident set then follows the live tensors. The worker builds the model,
resets the kernel's high-water mark (``/proc/self/clear_refs``), reads the
resident set (baseline), runs one forward (or train step) and reports the
high-water mark minus the baseline: the peak of activations and
temporaries, plus for a train step the gradients and AdamW state (the same
for both paths). Where the high-water mark cannot be reset (not Linux), the
baseline is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after building
the model, which can hide a peak smaller than the construction's.

Examples::

    # the full table on this machine, JSON next to it
    python tools/analysis/benchmark.py --out benchmarks/cpu_results.json
    # a quick check (about a minute on 2 CPU cores)
    python tools/analysis/benchmark.py --archs t --repeats 2 --warmup 1 \\
        --batch 2 --no-memory
    # on a GPU, fp32 and AMP (bf16 where supported, else fp16)
    python tools/analysis/benchmark.py --device cuda --precisions fp32 amp
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

IMPLS = ('fast', 'reference')
ARCH_NAMES = dict(t='tiny', s='small', b='base', l='large')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark the SMT backbone (fast vs reference path).')
    parser.add_argument('--archs', nargs='+', default=['t', 's', 'b', 'l'],
                        choices=sorted(ARCH_NAMES) + sorted(
                            ARCH_NAMES.values()))
    parser.add_argument('--device', default='auto',
                        help="'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when "
                        'available)')
    parser.add_argument('--precisions', nargs='+', default=None,
                        choices=['fp32', 'amp'],
                        help='fp32 and/or amp (torch.autocast, bf16 where '
                        'supported, else fp16); default fp32 on CPU, both '
                        'on GPU')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--large-size', type=int, nargs=2,
                        default=[800, 1216], metavar=('H', 'W'))
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurements')
    parser.add_argument('--no-latency', action='store_true',
                        help='skip the large-image latency')
    parser.add_argument('--out', default=None, help='write results as JSON')
    parser.add_argument('--markdown', default=None,
                        help='also write the table to this file')
    parser.add_argument('--memory-worker', default=None,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_time(fn: Callable, device: torch.device, warmup: int,
                repeats: int) -> float:
    """Median wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=amp_dtype(device),
                          enabled=precision == 'amp')


def build_model(arch: str, impl: str, device: torch.device):
    from smt_mm.models import SMT
    torch.manual_seed(0)
    model = SMT(ARCH_NAMES.get(arch, arch), impl=impl)
    model.init_weights()
    return model.to(device)


def make_train_step(model, device: torch.device, precision: str):
    """A closure doing forward, backward and an AdamW step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    # fp16 gradients need loss scaling; bf16 and fp32 do not
    scaler = torch.amp.GradScaler(
        device.type, enabled=(precision == 'amp'
                              and amp_dtype(device) == torch.float16))

    def step(x):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = sum(o.float().mean() for o in model(x))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def forward_fn(model, device, precision):
    def run(x):
        with torch.no_grad(), autocast(device, precision):
            model(x)
    return run


def sgemm_gflops(device: torch.device, repeats: int) -> float:
    n = 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    seconds = median_time(lambda: torch.mm(a, b), device, 2, repeats)
    return 2 * n**3 / seconds / 1e9


def backbone_macs(arch: str, size: int) -> float:
    """Multiply-adds of the backbone forward at ``size``, attention
    matmuls included (the convention of smt_mm/utils/complexity.py)."""
    from mmengine.analysis import FlopAnalyzer

    from smt_mm.utils.complexity import attention_matmul_flops
    model = build_model(arch, 'fast', torch.device('cpu')).eval()
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (torch.rand(1, 3, size, size), ))
        analyzer.set_op_handle('aten::scaled_dot_product_attention',
                               attention_matmul_flops)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return float(analyzer.total())


# ----------------------------------------------------------------------
# Peak memory
# ----------------------------------------------------------------------
def max_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == 'darwin' else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def proc_status_bytes(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def cpu_peak(run: Callable) -> float:
    if reset_peak_rss():
        base = proc_status_bytes('VmRSS')
        run()
        return float(proc_status_bytes('VmHWM') - base)
    base = max_rss_bytes()
    run()
    return float(max_rss_bytes() - base)


def measure_peak(arch, impl, mode, size, device, precision) -> float:
    """Peak memory (bytes) of one forward ('forward') or train step
    ('train') of one image of ``size``; run in this process."""
    model = build_model(arch, impl, device)
    x = torch.randn(1, 3, *size, device=device)
    if mode == 'train':
        model.train()
        run = make_train_step(model, device, precision)
    else:
        model.eval()
        run = forward_fn(model, device, precision)
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run(x)
        synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    return cpu_peak(lambda: run(x))


def peak_in_subprocess(arch, impl, mode, size, device, precision,
                       threads) -> Optional[float]:
    """CPU peaks need a fresh process each (ru_maxrss never decreases)."""
    job = dict(arch=arch, impl=impl, mode=mode, size=list(size),
               device=str(device), precision=precision, threads=threads)
    cmd = [sys.executable, os.path.abspath(__file__), '--memory-worker',
           json.dumps(job)]
    # big blocks get their own mappings, unmapped on free (see docstring)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072',
               MALLOC_TRIM_THRESHOLD_='131072')
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f'memory worker failed for {job}:\n{proc.stderr[-2000:]}',
              file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_bytes']


def memory_worker(spec: str) -> None:
    job = json.loads(spec)
    if job['threads']:
        torch.set_num_threads(job['threads'])
    peak = measure_peak(job['arch'], job['impl'], job['mode'],
                        tuple(job['size']), torch.device(job['device']),
                        job['precision'])
    print(json.dumps(dict(peak_bytes=peak)))


def peak_memory(arch, impl, mode, size, device, precision, threads):
    if device.type == 'cuda':
        return measure_peak(arch, impl, mode, size, device, precision)
    return peak_in_subprocess(arch, impl, mode, size, device, precision,
                              threads)


# ----------------------------------------------------------------------
# One configuration
# ----------------------------------------------------------------------
def bench_impl(arch, impl, precision, device, args) -> Dict:
    model = build_model(arch, impl, device)
    batch = torch.randn(args.batch, 3, args.size, args.size, device=device)
    result = dict(arch=ARCH_NAMES.get(arch, arch), impl=impl,
                  precision=precision)

    model.eval()
    fwd = forward_fn(model, device, precision)
    seconds = median_time(lambda: fwd(batch), device, args.warmup,
                          args.repeats)
    result['forward_img_s'] = args.batch / seconds

    model.train()
    step = make_train_step(model, device, precision)
    seconds = median_time(lambda: step(batch), device, args.warmup,
                          args.repeats)
    result['train_img_s'] = args.batch / seconds

    if not args.no_latency:
        model.eval()
        large = torch.randn(1, 3, *args.large_size, device=device)
        result['latency_ms'] = 1e3 * median_time(
            lambda: fwd(large), device, min(args.warmup, 1), args.repeats)
    del model, batch
    if not args.no_memory:
        for mode in ('forward', 'train'):
            peak = peak_memory(arch, impl, mode, tuple(args.large_size),
                               device, precision, args.threads)
            result[f'peak_{mode}_mib'] = None if peak is None \
                else peak / 2**20
    return result


def ratios(fast: Dict, ref: Dict) -> Dict:
    """Speed-ups (fast / reference throughput, reference / fast latency)
    and memory ratios (fast / reference)."""
    def div(a, b):
        return None if a is None or b in (None, 0) else a / b

    return dict(
        forward_speedup=div(fast['forward_img_s'], ref['forward_img_s']),
        train_speedup=div(fast['train_img_s'], ref['train_img_s']),
        latency_speedup=div(ref.get('latency_ms'), fast.get('latency_ms')),
        peak_forward_ratio=div(fast.get('peak_forward_mib'),
                               ref.get('peak_forward_mib')),
        peak_train_ratio=div(fast.get('peak_train_mib'),
                             ref.get('peak_train_mib')))


# ----------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------
def fmt(value, digits=1, suffix=''):
    return '-' if value is None else f'{value:.{digits}f}{suffix}'


def markdown_table(report: Dict) -> str:
    env = report['environment']
    h, w = report['settings']['large_size']
    lines = [
        f"Device: {env['device_name']}, {env['threads']} threads, torch "
        f"{env['torch']}; load average before the run "
        f"{env['load_average']}. SGEMM (2048², fp32): "
        f"{env['sgemm_gflops']:.1f} GFLOP/s.",
        '',
        f"| arch | precision | impl | fwd img/s (b{report['settings']['batch']}"
        f", {report['settings']['size']}²) | fwd GFLOP/s (% SGEMM) | "
        f"train img/s | latency ms ({h}×{w}) | peak fwd MiB ({h}×{w}) | "
        f'peak train MiB ({h}×{w}) |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for row in report['results']:
        if row['impl'] == 'fast/reference':
            r = row['ratios']
            lines.append(
                f"| {row['arch']} | {row['precision']} | **fast/ref** | "
                f"**{fmt(r['forward_speedup'], 2, 'x')}** | | "
                f"**{fmt(r['train_speedup'], 2, 'x')}** | "
                f"**{fmt(r['latency_speedup'], 2, 'x')}** | "
                f"**{fmt(r['peak_forward_ratio'], 2)}** | "
                f"**{fmt(r['peak_train_ratio'], 2)}** |")
            continue
        gflops = row.get('forward_gflops')
        share = 100 * gflops / env['sgemm_gflops']
        lines.append(
            f"| {row['arch']} | {row['precision']} | {row['impl']} | "
            f"{fmt(row['forward_img_s'])} | {gflops:.1f} ({share:.0f}%) | "
            f"{fmt(row['train_img_s'])} | {fmt(row.get('latency_ms'))} | "
            f"{fmt(row.get('peak_forward_mib'), 0)} | "
            f"{fmt(row.get('peak_train_mib'), 0)} |")
    lines += [
        '',
        'fast/ref: throughput and latency as speed-ups (higher is better), '
        'peak memory as fast ÷ reference (lower is better). GFLOP/s = 2 × '
        f"backbone multiply-adds at {report['settings']['size']}² × img/s.",
    ]
    return '\n'.join(lines)


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU ' \
        f'({os.cpu_count()} logical cores)'


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        memory_worker(args.memory_worker)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(args.device)
    precisions = args.precisions or (
        ['fp32', 'amp'] if device.type == 'cuda' else ['fp32'])

    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    env = dict(
        device=str(device), device_name=device_name(device),
        threads=torch.get_num_threads(), torch=torch.__version__,
        load_average=None if load is None else [round(v, 2) for v in load],
        sgemm_gflops=sgemm_gflops(device, args.repeats))
    if device.type == 'cuda':
        env['amp_dtype'] = str(amp_dtype(device))
    print(f"SGEMM: {env['sgemm_gflops']:.1f} GFLOP/s", flush=True)

    results: List[Dict] = []
    for arch in args.archs:
        macs = backbone_macs(arch, args.size)
        for precision in precisions:
            by_impl = {}
            for impl in IMPLS:
                row = bench_impl(arch, impl, precision, device, args)
                row['forward_gflops'] = 2 * macs * row['forward_img_s'] / 1e9
                row['macs'] = macs
                by_impl[impl] = row
                results.append(row)
                print(json.dumps(row), flush=True)
            results.append(dict(
                arch=ARCH_NAMES.get(arch, arch), precision=precision,
                impl='fast/reference',
                ratios=ratios(by_impl['fast'], by_impl['reference'])))

    report = dict(environment=env,
                  settings=dict(batch=args.batch, size=args.size,
                                large_size=args.large_size,
                                repeats=args.repeats, warmup=args.warmup),
                  results=results)
    table = markdown_table(report)
    print(table)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
