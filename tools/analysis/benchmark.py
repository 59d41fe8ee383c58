# Copyright (c) SMT-MM contributors. All rights reserved.
"""Speed and memory of the SMT backbone: ours against the official code.

Sides (all with the same weights, built once and copied):

* ``fast``: :class:`smt_mm.models.SMT` as it computes;
* ``reference``: the same model computed by ``reference_smt.py`` (plain
  NCHW, one conv per head, explicit attention, nothing folded);
* ``official`` (with ``--official PATH``): the official repository's
  ``models/smt.py``, loaded from that path (see ``official_smt.py``);
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
* peak memory (MiB) of that forward and of that train step.

Timings are interleaved: after warm-up, each repetition runs every side once
in turn, so a change of machine load hits all sides alike; the tables give
medians over ``--repeats``. The run also records the fp32 SGEMM rate and
the load average, to compare runs.

Peak memory. On a GPU: ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus what was allocated before the call
(weights). On the CPU PyTorch keeps no allocator statistics, so each
measurement runs in a fresh subprocess whose glibc malloc is told
(``MALLOC_MMAP_THRESHOLD_``) to give every block over 128 KiB its own
mapping, returned to the system when freed: the resident set then follows
the live tensors. The worker builds the model, resets the kernel's
high-water mark (``/proc/self/clear_refs``), runs one forward (or train
step) and reports the high-water mark minus the resident set before it.
A train step's peak includes gradients and the AdamW state it creates.

Examples::

    # the CPU table against the official code
    python tools/analysis/benchmark.py --archs t b \\
        --official ../shared/official/models_smt.py \\
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
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

ARCH_NAMES = dict(t='tiny', s='small', b='base', l='large')
PRECISIONS = ('fp32', 'bf16', 'fp16', 'amp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark the SMT backbone against the official code '
        'and its reference path.')
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
        help="the official repository's models/smt.py, "
        'compared as a third side')
    parser.add_argument(
        '--no-reference',
        action='store_true',
        help='leave out the reference path')
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
    parser.add_argument(
        '--memory-worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ('batch', 'size', 'large_batch', 'repeats'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.official and not osp.isfile(args.official):
        parser.error(f'--official: no such file {args.official!r} (the '
                     "official repository's models/smt.py)")
    return args


# ----------------------------------------------------------------------
# Models: every side computes the same features from the same weights
# ----------------------------------------------------------------------
def amp_dtype(device: torch.device, precision: str) -> Optional[torch.dtype]:
    if precision == 'fp32':
        return None
    if precision == 'amp':
        bf16 = device.type != 'cuda' or torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    return dict(bf16=torch.bfloat16, fp16=torch.float16)[precision]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(
        device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


class Features(torch.nn.Module):
    """Pooled stage-4 features of one side (B, C)."""

    def __init__(self, model, official: bool):
        super().__init__()
        self.model = model
        self.official = official

    def forward(self, x):
        if self.official:
            return self.model.forward_features(x)
        return self.model(x)[-1].mean((2, 3))


def build_sides(arch: str, sides: List[str], official_path: Optional[str],
                device: torch.device) -> Dict[str, Features]:
    """One model per side, all with the weights of the first built."""
    from smt_mm.models import SMT
    name = ARCH_NAMES.get(arch, arch)
    torch.manual_seed(0)
    ours = SMT(name, out_indices=(3, ))
    ours.init_weights()
    state = ours.state_dict()
    models = {}
    if official_path and 'official' in sides:
        from official_smt import (build_official, load_official_module,
                                  official_to_ours)
        torch.manual_seed(0)
        official = build_official(name, load_official_module(official_path))
        state = official_to_ours(official.state_dict(), ours)
        models['official'] = Features(official, official=True)
    for side in sides:
        if side == 'official':
            continue
        model = SMT(name, out_indices=(3, ))
        model.load_state_dict(state)
        if side == 'reference':
            from reference_smt import ReferenceSMT
            model = ReferenceSMT(model)
        features = Features(model, official=False)
        if side == 'compiled':
            features = torch.compile(features, dynamic=False)
        models[side] = features
    return {side: models[side].to(device) for side in sides}


def projection(dims: int, device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(dims, generator=gen).to(device)


def make_train_step(model, device, dtype):
    """A closure doing forward, backward and an AdamW step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    weights = {}

    def step(x):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            feats = model(x).float()
        if feats.shape[1] not in weights:
            weights[feats.shape[1]] = projection(feats.shape[1], device)
        loss = (feats * weights[feats.shape[1]]).sum()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def forward_fn(model, device, dtype):

    def run(x):
        with torch.no_grad(), autocast(device, dtype):
            model(x)

    return run


def compare_sides(models: Dict[str, Features], device, size: int) -> Dict:
    """Max abs difference of the fp32 eval features and max relative
    difference of the parameter gradients (train mode) of every side
    against the first. Gradients are matched by shape order, which the
    official and our models share (checked by the weight conversion)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, size, size, generator=gen).to(device)
    outs, grads = {}, {}
    for side, model in models.items():
        model.eval()
        with torch.no_grad():
            outs[side] = model(x).float()
        model.train()
        # the same function in train mode: BN uses batch statistics
        model.zero_grad(set_to_none=True)
        feats = model(x).float()
        (feats * projection(feats.shape[1], device)).sum().backward()
        grads[side] = _named_grads(model)
        model.zero_grad(set_to_none=True)
    first = next(iter(models))
    report = {}
    for side in models:
        if side == first:
            continue
        diff = (outs[side] - outs[first]).abs().max().item()
        report[side] = dict(
            max_abs_feature_diff=diff,
            feature_scale=outs[first].abs().max().item(),
            max_rel_grad_diff=_max_rel_diff(grads[side], grads[first]))
    return report


def _named_grads(model) -> Dict[str, torch.Tensor]:
    """Gradients keyed by our parameter names (official names converted)."""
    from smt_mm.models.utils import convert_official_key
    inner = getattr(model, '_orig_mod', model)
    net = inner.model
    net = getattr(net, 'model', net)  # ReferenceSMT wraps an SMT
    grads = {}
    for name, param in net.named_parameters():
        if param.grad is None:
            continue
        key = convert_official_key(name) if inner.official else name
        if key is not None:
            grads[key] = param.grad.detach().float().clone()
    return grads


def _max_rel_diff(grads: Dict, ref: Dict) -> float:
    """Max over tensors of |g - g_ref|_max / |g_ref|_max (tensors whose
    reference gradient is below 1e-3 of the largest are compared against
    the largest instead)."""
    scale = max(g.abs().max().item() for g in ref.values())
    worst = 0.
    for key, g_ref in ref.items():
        denom = max(g_ref.abs().max().item(), 1e-3 * scale)
        worst = max(worst, (grads[key] - g_ref).abs().max().item() / denom)
    return worst


# ----------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_medians(fns: Dict[str, Callable], device, warmup: int,
                        repeats: int) -> Dict[str, float]:
    """Median seconds of each callable, timed in turn every repetition."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {side: [] for side in fns}
    for _ in range(repeats):
        for side, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[side].append(time.perf_counter() - start)
    return {side: statistics.median(t) for side, t in times.items()}


def first_call_seconds(fn: Callable, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def sgemm_gflops(device: torch.device, repeats: int) -> float:
    n = 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    seconds = interleaved_medians({'mm': lambda: torch.mm(a, b)}, device, 2,
                                  repeats)['mm']
    return 2 * n**3 / seconds / 1e9


def backbone_macs(arch: str, size: int) -> float:
    """Multiply-adds of the backbone forward at ``size``, attention
    matmuls included (the counter of ``tools/analysis/get_flops.py``)."""
    from smt_mm.models import SMT
    from smt_mm.utils.complexity import analyze_flops
    model = SMT(ARCH_NAMES.get(arch, arch)).eval()
    with torch.no_grad():
        return float(
            analyze_flops(model, (torch.rand(1, 3, size, size), )).total())


# ----------------------------------------------------------------------
# Peak memory
# ----------------------------------------------------------------------
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


def measure_peak(model, mode, x, device, dtype) -> Optional[float]:
    """Peak memory (bytes) of one forward or train step, in this process."""
    if mode == 'train':
        model.train()
        run = make_train_step(model, device, dtype)
    else:
        model.eval()
        run = forward_fn(model, device, dtype)
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run(x)
        synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    if not reset_peak_rss():
        return None
    base = proc_status_bytes('VmRSS')
    run(x)
    return float(proc_status_bytes('VmHWM') - base)


def memory_worker(spec: str) -> None:
    job = json.loads(spec)
    if job['threads']:
        torch.set_num_threads(job['threads'])
    device = torch.device('cpu')
    model = build_sides(job['arch'], [job['side']], job['official'],
                        device)[job['side']]
    x = torch.randn(job['batch'], 3, *job['size'])
    peak = measure_peak(model, job['mode'], x, device,
                        amp_dtype(device, job['precision']))
    print(json.dumps(dict(peak_bytes=peak)))


def peak_in_subprocess(job: Dict) -> Optional[float]:
    """CPU peaks need a fresh process each (the high-water mark of a
    process that already ran other sides says nothing)."""
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--memory-worker',
        json.dumps(job)
    ]
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_='131072',
        MALLOC_TRIM_THRESHOLD_='131072')
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(
            f'memory worker failed for {job}:\n{proc.stderr[-2000:]}',
            file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_bytes']


# (mode, images): the train step takes --large-batch images
MEMORY_MODES = (('forward', 1), ('train', None))


def gpu_peak_memory(models, precision, device, args) -> Dict[str, Dict]:
    """Peaks of every side, measured in this process (CUDA's allocator
    statistics are exact)."""
    dtype = amp_dtype(device, precision)
    result = {side: {} for side in models}
    for side, model in models.items():
        for mode, batch in MEMORY_MODES:
            x = torch.randn(
                batch or args.large_batch, 3, *args.large_size, device=device)
            peak = measure_peak(model, mode, x, device, dtype)
            result[side][f'peak_{mode}_mib'] = peak / 2**20
            del x
            torch.cuda.empty_cache()
    return result


def cpu_peak_memory(arch, sides, precision, args) -> Dict[str, Dict]:
    """Peaks of every side, each in a fresh subprocess. Run before this
    process holds models and activations: both together may not fit."""
    result = {side: {} for side in sides}
    for side in sides:
        for mode, batch in MEMORY_MODES:
            peak = None  # a compiled side would need its own compile
            if side != 'compiled':
                peak = peak_in_subprocess(
                    dict(
                        arch=arch,
                        side=side,
                        official=args.official,
                        mode=mode,
                        size=list(args.large_size),
                        batch=batch or args.large_batch,
                        precision=precision,
                        threads=args.threads))
            result[side][f'peak_{mode}_mib'] = \
                None if peak is None else peak / 2**20
    return result


# ----------------------------------------------------------------------
# One architecture and precision
# ----------------------------------------------------------------------
def bench(models: Dict[str, Features], arch, precision, device,
          args) -> Dict[str, Dict]:
    dtype = amp_dtype(device, precision)
    rows = {
        side:
        dict(arch=ARCH_NAMES.get(arch, arch), impl=side, precision=precision)
        for side in models
    }
    if 'compiled' in models:
        # first calls compile (forward graph, then forward + backward)
        batch = torch.randn(args.batch, 3, args.size, args.size, device=device)
        models['compiled'].eval()
        fwd = first_call_seconds(
            lambda: forward_fn(models['compiled'], device, dtype)(batch),
            device)
        models['compiled'].train()
        step = make_train_step(models['compiled'], device, dtype)
        train = first_call_seconds(lambda: step(batch), device)
        rows['compiled'].update(compile_forward_s=fwd, compile_train_s=train)

    fwd = {s: forward_fn(m, device, dtype) for s, m in models.items()}
    steps = {s: make_train_step(m, device, dtype) for s, m in models.items()}

    def timed(fns, mode, x, warmup):
        """Median seconds per side of ``fns`` on ``x``, interleaved."""
        for model in models.values():
            model.train(mode == 'train')
        return interleaved_medians(
            {
                s: (lambda f=f: f(x))
                for s, f in fns.items()
            }, device, warmup, args.repeats).items()

    batch = torch.randn(args.batch, 3, args.size, args.size, device=device)
    for side, sec in timed(fwd, 'eval', batch, args.warmup):
        rows[side]['forward_img_s'] = args.batch / sec
    for side, sec in timed(steps, 'train', batch, args.warmup):
        rows[side]['train_img_s'] = args.batch / sec
    batch = None  # free it before the large-image runs
    if not args.no_latency:
        large = torch.randn(1, 3, *args.large_size, device=device)
        for side, sec in timed(fwd, 'eval', large, min(args.warmup, 1)):
            rows[side]['latency_ms'] = 1e3 * sec
        large = torch.randn(
            args.large_batch, 3, *args.large_size, device=device)
        for side, sec in timed(steps, 'train', large, min(args.warmup, 1)):
            rows[side]['large_train_ms'] = 1e3 * sec
        large = None
    del steps
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        if not args.no_memory:
            for side, peaks in gpu_peak_memory(models, precision, device,
                                               args).items():
                rows[side].update(peaks)
    return rows


RATIO_KEYS = (  # (result key, higher is better)
    ('forward_img_s', True), ('train_img_s', True), ('latency_ms', False),
    ('large_train_ms', False), ('peak_forward_mib', None), ('peak_train_mib',
                                                            None))


def ratios(ours: Dict, base: Dict) -> Dict:
    """Speed-ups of ``ours`` over ``base`` (throughput ratios, inverse
    time ratios) and memory as ours / base."""
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


# ----------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------
def fmt(value, digits=1, suffix=''):
    return '-' if value is None else f'{value:.{digits}f}{suffix}'


def markdown_table(report: Dict) -> str:
    env, st = report['environment'], report['settings']
    h, w = st['large_size']
    lb = st['large_batch']
    lines = [
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
    for row in report['results']:
        if 'ratios' in row:
            r = row['ratios']
            lines.append(
                f"| {row['arch']} | {row['precision']} | **{row['impl']}** | "
                +
                ' | '.join(f"**{fmt(r[k], 2, '' if better is None else 'x')}**"
                           for k, better in RATIO_KEYS) + ' |')
            continue
        lines.append(f"| {row['arch']} | {row['precision']} | {row['impl']} | "
                     f"{fmt(row.get('forward_img_s'))} | "
                     f"{fmt(row.get('train_img_s'))} | "
                     f"{fmt(row.get('latency_ms'))} | "
                     f"{fmt(row.get('large_train_ms'))} | "
                     f"{fmt(row.get('peak_forward_mib'), 0)} | "
                     f"{fmt(row.get('peak_train_mib'), 0)} |")
    note = caveat(st['repeats'])
    if note:
        lines[1:1] = ['', f'**{note}**']
    lines += [
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
    return '\n'.join(lines)


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU ' \
        f'({os.cpu_count()} logical cores)'


def ratio_rows(rows: Dict[str, Dict], arch, precision) -> List[Dict]:
    pairs = [('fast', 'official'), ('compiled', 'official'),
             ('fast', 'reference'), ('compiled', 'fast')]
    return [
        dict(
            arch=ARCH_NAMES.get(arch, arch),
            precision=precision,
            impl=f'{a}/{b}',
            ratios=ratios(rows[a], rows[b])) for a, b in pairs
        if a in rows and b in rows
    ]


def progress(line: str) -> None:
    """A short line on stderr while measuring (the table is stdout)."""
    print(line, file=sys.stderr, flush=True)


def caveat(repeats: int) -> Optional[str]:
    """What one or two repeats mean for the numbers, or None."""
    if repeats >= 3:
        return None
    what = 'one timing' if repeats == 1 else 'the median of 2 timings'
    return (f'Caveat: --repeats {repeats}: each number is {what} and each '
            'ratio a quotient of such numbers; on a shared or busy CPU they '
            'move between runs by more than the differences they show. Use '
            '--repeats 3 or more (5 for numbers to quote).')


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
    cuda = device.type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    precisions = args.precisions or (['fp32', 'bf16', 'fp16']
                                     if cuda else ['fp32'])
    sides = ['fast'] + ([] if args.no_reference else ['reference']) + \
        (['official'] if args.official else []) + \
        (['compiled'] if args.compile else [])

    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    env = dict(
        device=str(device),
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        load_average=None if load is None else [round(v, 2) for v in load],
        sgemm_gflops=sgemm_gflops(device, args.repeats),
        cudnn_benchmark=cuda and not args.no_cudnn_benchmark)
    progress(f"SGEMM: {env['sgemm_gflops']:.1f} GFLOP/s")

    results: List[Dict] = []
    equality = {}
    for arch in args.archs:
        macs = backbone_macs(arch, args.size)
        cpu_peaks = {}
        if not cuda and not args.no_memory:
            cpu_peaks = {
                p: cpu_peak_memory(arch, sides, p, args)
                for p in precisions
            }
        models = build_sides(arch, sides, args.official, device)
        plain = {s: m for s, m in models.items() if s != 'compiled'}
        equality[ARCH_NAMES.get(arch,
                                arch)] = compare_sides(plain, device,
                                                       min(args.size, 96))
        progress(f'{ARCH_NAMES.get(arch, arch)}: sides agree '
                 f'({", ".join(s for s in plain if s != "fast")} vs fast); '
                 f'timing {", ".join(sides)}')
        for precision in precisions:
            rows = bench(models, arch, precision, device, args)
            for side, peaks in cpu_peaks.get(precision, {}).items():
                rows[side].update(peaks)
            for row in rows.values():
                row['macs'] = macs
                row['forward_gflops'] = \
                    2 * macs * row['forward_img_s'] / 1e9
                progress(f"  {row['arch']} {precision} {row['impl']}: "
                         f"{fmt(row.get('forward_img_s'))} img/s forward, "
                         f"{fmt(row.get('train_img_s'))} img/s train")
            results += list(rows.values())
            results += ratio_rows(rows, arch, precision)
        del models, plain
        if cuda:
            torch.cuda.empty_cache()

    report = dict(
        environment=env,
        settings=dict(
            batch=args.batch,
            size=args.size,
            large_size=args.large_size,
            large_batch=args.large_batch,
            repeats=args.repeats,
            warmup=args.warmup,
            official=args.official),
        equality=equality,
        results=results)
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
    main()
