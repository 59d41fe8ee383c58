# Copyright (c) SMT-MM contributors. All rights reserved.
"""Peak memory of one forward or train step of a side.

On a GPU: ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus what was allocated before the call
(weights). On the CPU PyTorch keeps no allocator statistics, so each
measurement runs in a fresh process (``python -m smt_mm.benchmark.memory
JOB``) whose glibc malloc is told (``MALLOC_MMAP_THRESHOLD_``) to give every
block over 128 KiB its own mapping, returned to the system when freed: the
resident set then follows the live tensors. The worker builds the model,
resets the kernel's high-water mark (``/proc/self/clear_refs``), runs one
forward (or train step) and prints the high-water mark minus the resident
set before it. A train step's peak includes gradients and the AdamW state
it creates.
"""
import json
import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

import torch

from .sides import amp_dtype, build_sides, forward_fn, make_train_step
from .timing import synchronize

# (mode, images): None stands for the large batch of a train step
MEMORY_MODES = (('forward', 1), ('train', None))
# the module a CPU measurement runs as, in a fresh process
WORKER = 'smt_mm.benchmark.memory'


def proc_status_bytes(field: str) -> int:
    """A ``/proc/self/status`` field given in kB, in bytes."""
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


def measure_peak(model, mode: str, x: torch.Tensor, device,
                 dtype) -> Optional[float]:
    """Peak bytes of one forward (``mode='forward'``) or train step
    (``'train'``) on ``x``, in this process; None where the CPU's
    high-water mark cannot be reset."""
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


def gpu_peak_memory(models: Dict, precision: str, device,
                    large_size: Sequence[int],
                    large_batch: int) -> Dict[str, Dict]:
    """Peaks (MiB) of every side at ``large_size``, measured in this process
    (CUDA's allocator statistics are exact)."""
    dtype = amp_dtype(device, precision)
    result = {side: {} for side in models}
    for side, model in models.items():
        for mode, batch in MEMORY_MODES:
            x = torch.randn(
                batch or large_batch, 3, *large_size, device=device)
            peak = measure_peak(model, mode, x, device, dtype)
            result[side][f'peak_{mode}_mib'] = peak / 2**20
            del x
            torch.cuda.empty_cache()
    return result


def cpu_peak_memory(arch: str,
                    sides: List[str],
                    precision: str,
                    large_size: Sequence[int],
                    large_batch: int,
                    official: Optional[str] = None,
                    threads: Optional[int] = None) -> Dict[str, Dict]:
    """Peaks (MiB) of every side, each in a fresh process.

    Run it before this process holds models and activations: both together
    may not fit. The compiled side has no peak (it would need its own
    compile in the worker).
    """
    result = {side: {} for side in sides}
    for side in sides:
        for mode, batch in MEMORY_MODES:
            peak = None
            if side != 'compiled':
                peak = peak_in_subprocess(
                    dict(
                        arch=arch,
                        side=side,
                        official=official,
                        mode=mode,
                        size=list(large_size),
                        batch=batch or large_batch,
                        precision=precision,
                        threads=threads))
            result[side][f'peak_{mode}_mib'] = \
                None if peak is None else peak / 2**20
    return result


def peak_in_subprocess(job: Dict) -> Optional[float]:
    """Peak bytes of ``job`` measured by a fresh worker process.

    The high-water mark of a process that already ran other sides says
    nothing, hence one process per measurement. None when the worker
    fails (its error is shown on stderr).
    """
    cmd = [sys.executable, '-m', WORKER, json.dumps(job)]
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


def worker(job: Dict) -> Optional[float]:
    """Build the job's side on the CPU and measure its peak bytes."""
    if job['threads']:
        torch.set_num_threads(job['threads'])
    device = torch.device('cpu')
    model = build_sides(job['arch'], [job['side']], job['official'],
                        device)[job['side']]
    x = torch.randn(job['batch'], 3, *job['size'])
    return measure_peak(model, job['mode'], x, device,
                        amp_dtype(device, job['precision']))


if __name__ == '__main__':
    peak = worker(json.loads(sys.argv[1]))
    print(json.dumps(dict(peak_bytes=peak)))
