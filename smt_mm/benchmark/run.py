# Copyright (c) SMT-MM contributors. All rights reserved.
"""Measure every architecture and precision of a benchmark's settings.

Per architecture and precision: forward and train-step throughput at
``batch`` images of ``size``², the forward latency of one ``large_size``
image and one train step on ``large_batch`` such images, and the peak
memory of that forward and that train step. Before timing, every side's
outputs and gradients are compared with the fast side's in fp32.
"""
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .memory import cpu_peak_memory, gpu_peak_memory
from .report import device_name, fmt, ratio_rows
from .sides import (amp_dtype, arch_name, build_sides, compare_sides,
                    forward_fn, make_train_step)
from .timing import (backbone_macs, first_call_seconds, interleaved_medians,
                     sgemm_gflops)


@dataclass
class Settings:
    """What to measure, and how.

    Args:
        archs: presets, short (``t``) or long (``tiny``).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'auto'``.
        precisions: out of ``fp32 bf16 fp16 amp``; None: fp32 on the CPU,
            fp32 bf16 fp16 on a GPU.
        official: the official ``models/smt.py``, compared when given.
        compile: also time ``torch.compile`` of the fast model.
        batch, size: images and square side of the throughput runs.
        large_size, large_batch: (H, W) of the latency and memory runs,
            and the images of their train step.
        repeats, warmup: timed and untimed rounds.
        threads: ``torch.set_num_threads``; None keeps torch's default.
        cudnn_benchmark: on CUDA, switch ``cudnn.benchmark`` on.
        memory, latency: measure peaks / the large-image runs.
    """
    archs: Sequence[str] = ('t', 'b')
    device: str = 'auto'
    precisions: Optional[Sequence[str]] = None
    official: Optional[str] = None
    compile: bool = False
    batch: int = 8
    size: int = 224
    large_size: Sequence[int] = field(default_factory=lambda: [800, 1216])
    large_batch: int = 1
    repeats: int = 5
    warmup: int = 2
    threads: Optional[int] = None
    cudnn_benchmark: bool = True
    memory: bool = True
    latency: bool = True

    @property
    def sides(self) -> List[str]:
        return ['fast'] + (['official'] if self.official else []) + \
            (['compiled'] if self.compile else [])


def progress_to_stderr(line: str) -> None:
    """A short line on stderr while measuring (the table is stdout)."""
    print(line, file=sys.stderr, flush=True)


def _compile_times(model, shape, device, dtype) -> Dict[str, float]:
    """Seconds of the first calls on an input of ``shape``, which compile
    (forward graph, then forward + backward)."""
    batch = torch.randn(*shape, device=device)
    model.eval()
    fwd = first_call_seconds(lambda: forward_fn(model, device, dtype)(batch),
                             device)
    model.train()
    step = make_train_step(model, device, dtype)
    train = first_call_seconds(lambda: step(batch), device)
    return dict(compile_forward_s=fwd, compile_train_s=train)


def measure(models: Dict, arch: str, precision: str, device: torch.device,
            st: Settings) -> Dict[str, Dict]:
    """One row per side: throughputs, large-image times and, on a GPU,
    peak memory."""
    dtype = amp_dtype(device, precision)
    rows = {
        side: dict(arch=arch_name(arch), impl=side, precision=precision)
        for side in models
    }
    if 'compiled' in models:
        rows['compiled'].update(
            _compile_times(models['compiled'], (st.batch, 3, st.size, st.size),
                           device, dtype))
    fwd = {s: forward_fn(m, device, dtype) for s, m in models.items()}
    steps = {s: make_train_step(m, device, dtype) for s, m in models.items()}

    def timed(fns, mode, shape, warmup):
        """Median seconds per side of ``fns`` on an input of ``shape``."""
        for model in models.values():
            model.train(mode == 'train')
        x = torch.randn(*shape, device=device)
        calls = {s: (lambda f=f: f(x)) for s, f in fns.items()}
        return interleaved_medians(calls, device, warmup, st.repeats).items()

    shape = (st.batch, 3, st.size, st.size)
    for side, sec in timed(fwd, 'eval', shape, st.warmup):
        rows[side]['forward_img_s'] = st.batch / sec
    for side, sec in timed(steps, 'train', shape, st.warmup):
        rows[side]['train_img_s'] = st.batch / sec
    if st.latency:
        large = (1, 3, *st.large_size)
        for side, sec in timed(fwd, 'eval', large, min(st.warmup, 1)):
            rows[side]['latency_ms'] = 1e3 * sec
        large = (st.large_batch, 3, *st.large_size)
        for side, sec in timed(steps, 'train', large, min(st.warmup, 1)):
            rows[side]['large_train_ms'] = 1e3 * sec
    del steps
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        if st.memory:
            for side, peaks in gpu_peak_memory(models, precision, device,
                                               st.large_size,
                                               st.large_batch).items():
                rows[side].update(peaks)
    return rows


def environment(device: torch.device, st: Settings) -> Dict:
    """The machine, its load and SGEMM rate, to compare runs."""
    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    return dict(
        device=str(device),
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        load_average=None if load is None else [round(v, 2) for v in load],
        sgemm_gflops=sgemm_gflops(device, st.repeats),
        cudnn_benchmark=device.type == 'cuda' and st.cudnn_benchmark)


def bench_arch(arch: str, precisions: List[str], device: torch.device,
               st: Settings, progress: Callable) -> Tuple[List[Dict], Dict]:
    """The rows (sides and ratios) and the equality check of one arch."""
    macs = backbone_macs(arch, st.size)
    cpu_peaks = {}
    if device.type != 'cuda' and st.memory:
        cpu_peaks = {
            p:
            cpu_peak_memory(arch, st.sides, p, st.large_size, st.large_batch,
                            st.official, st.threads)
            for p in precisions
        }
    models = build_sides(arch, st.sides, st.official, device)
    plain = {s: m for s, m in models.items() if s != 'compiled'}
    equality = compare_sides(plain, device, min(st.size, 96))
    others = ', '.join(s for s in plain if s != 'fast')
    agree = f'sides agree ({others} vs fast); ' if others else ''
    progress(f'{arch_name(arch)}: {agree}timing {", ".join(st.sides)}')
    results = []
    for precision in precisions:
        rows = measure(models, arch, precision, device, st)
        for side, peaks in cpu_peaks.get(precision, {}).items():
            rows[side].update(peaks)
        for row in rows.values():
            row['macs'] = macs
            row['forward_gflops'] = 2 * macs * row['forward_img_s'] / 1e9
            progress(f"  {row['arch']} {precision} {row['impl']}: "
                     f"{fmt(row.get('forward_img_s'))} img/s forward, "
                     f"{fmt(row.get('train_img_s'))} img/s train")
        results += list(rows.values()) + ratio_rows(rows, arch, precision)
    return results, equality


def run_benchmark(
        st: Settings,
        progress: Callable[[str], None] = progress_to_stderr) -> Dict:
    """Measure ``st``; returns the report (environment, settings,
    equality checks, result rows) that
    :func:`~smt_mm.benchmark.report.markdown_table` formats."""
    if st.threads:
        torch.set_num_threads(st.threads)
    name = st.device
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(name)
    cuda = device.type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = st.cudnn_benchmark
    precisions = list(
        st.precisions or (['fp32', 'bf16', 'fp16'] if cuda else ['fp32']))
    env = environment(device, st)
    progress(f"SGEMM: {env['sgemm_gflops']:.1f} GFLOP/s")
    results, equality = [], {}
    for arch in st.archs:
        rows, equality[arch_name(arch)] = bench_arch(arch, precisions, device,
                                                     st, progress)
        results += rows
        if cuda:
            torch.cuda.empty_cache()
    settings = dict(
        batch=st.batch,
        size=st.size,
        large_size=list(st.large_size),
        large_batch=st.large_batch,
        repeats=st.repeats,
        warmup=st.warmup,
        official=st.official)
    return dict(
        environment=env, settings=settings, equality=equality, results=results)
