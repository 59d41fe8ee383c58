# Copyright (c) SMT-MM contributors. All rights reserved.
"""Timing: interleaved medians, the first call of a callable (a compile),
the machine's fp32 SGEMM rate and the backbone's multiply-adds.

Interleaving runs every side once in turn per repetition, so a change of
machine load hits all sides alike.
"""
import statistics
import time
from typing import Callable, Dict

import torch

from .sides import arch_name


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_medians(fns: Dict[str, Callable], device, warmup: int,
                        repeats: int) -> Dict[str, float]:
    """Median seconds of each callable, all timed in turn every repetition.

    Args:
        fns: callables without arguments, by name.
        device: the device they run on (synchronized around each call).
        warmup: untimed rounds first.
        repeats: timed rounds.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {side: [] for side in fns}
    for _ in range(repeats):
        for side, fn in fns.items():
            times[side].append(first_call_seconds(fn, device))
    return {side: statistics.median(t) for side, t in times.items()}


def first_call_seconds(fn: Callable, device) -> float:
    """Seconds of one call of ``fn``, the device's queue drained around."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def sgemm_gflops(device: torch.device, repeats: int) -> float:
    """The fp32 matrix-product rate of 2048² matrices, to compare runs."""
    n = 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    seconds = interleaved_medians({'mm': lambda: torch.mm(a, b)}, device, 2,
                                  repeats)['mm']
    return 2 * n**3 / seconds / 1e9


def backbone_macs(arch: str, size: int) -> float:
    """Multiply-adds of the backbone forward at ``size``², attention
    matmuls included (the counter of ``tools/analysis/get_flops.py``)."""
    from smt_mm.apis.complexity import analyze_flops
    from smt_mm.models import SMT
    model = SMT(arch_name(arch)).eval()
    with torch.no_grad():
        return float(
            analyze_flops(model, (torch.rand(1, 3, size, size), )).total())
