# Copyright (c) SMT-MM contributors. All rights reserved.
"""The checks of ``tools/misc/selfcheck.py``: is this machine ready to
train SMT models?

Each check is a function returning one line of findings or raising
:class:`CheckFailed` (or anything else) with the reason. On a CUDA device
the numerical checks compare the device with the CPU; without one they run
on the CPU and the device comparisons are reported as skipped.
"""
import importlib.util
import math
import os
import struct
import time
from typing import Callable, Dict, List, Optional, Set, Tuple

import torch

# The small architecture of the numerical checks (seconds on a CPU): the
# tiny preset, narrower and shallower
CHECK_ARCH = dict(embed_dims=[16, 32, 64, 128], depths=[1, 2, 2, 1])
# largest error of the device against the CPU, relative to the CPU's scale
DEVICE_TOL = 1e-3
PACKAGES = ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet',
            'mmsegmentation', 'mmpretrain', 'smt_mm')
FATBIN_MAGIC = struct.pack('<I', 0xBA55ED50)


class CheckFailed(Exception):
    """A check found the machine not ready; the message says why."""


def versions() -> str:
    """Python and package versions, one line."""
    import platform
    from importlib.metadata import PackageNotFoundError, version
    parts = [f'python {platform.python_version()}']
    for name in PACKAGES:
        try:
            parts.append(f'{name} {version(name)}')
        except PackageNotFoundError:
            parts.append(f'{name} missing')
    if parts[-1] == 'smt_mm missing':  # run from a checkout (PYTHONPATH)
        import smt_mm
        parts[-1] = f'smt_mm {smt_mm.__version__} (not installed)'

    parts[1] += f' (CUDA {torch.version.cuda or "none"})'
    return ', '.join(parts)


def cuda_unavailable_reason() -> str:
    """Why torch sees no CUDA device, in words."""
    if not torch.version.cuda:
        return f'torch {torch.__version__} is a CPU-only build'
    try:
        torch.cuda.init()
    except Exception as err:  # e.g. a driver too old for this CUDA
        return ' '.join(str(err).split())[:300]
    return 'no CUDA device found'


def device_line(device: torch.device) -> str:
    if device.type != 'cuda':
        return f'cpu, {torch.get_num_threads()} threads'
    prop = torch.cuda.get_device_properties(device)
    return (f'{prop.name} (sm_{prop.major}{prop.minor}, '
            f'{prop.total_memory / 2**30:.0f} GiB), '
            f'{torch.cuda.device_count()} visible')


def fatbin_archs(path: str) -> Tuple[Set[int], Set[int]]:
    """The GPU architectures (e.g. 90 for sm_90) a compiled library holds
    kernels for, as (machine code, PTX), read from its CUDA fat binaries:
    a 16-byte header (magic, version, header size, payload size), then
    entries of (kind: 1 PTX / 2 ELF, version, header size, payload size,
    ..., arch at byte 28)."""
    with open(path, 'rb') as f:
        data = f.read()
    elf, ptx = set(), set()
    pos = data.find(FATBIN_MAGIC)
    while pos >= 0:
        header_size, = struct.unpack_from('<H', data, pos + 6)
        size, = struct.unpack_from('<Q', data, pos + 8)
        entry, end = pos + header_size, pos + header_size + size
        while entry + 32 <= min(end, len(data)):
            kind, _, entry_size, payload = struct.unpack_from(
                '<HHIQ', data, entry)
            arch, = struct.unpack_from('<I', data, entry + 28)
            {2: elf, 1: ptx}.get(kind, set()).add(arch)
            entry += entry_size + payload
        pos = data.find(FATBIN_MAGIC, max(end, pos + 4))
    return elf, ptx


def runs_on(arch: int, elf: Set[int], ptx: Set[int]) -> bool:
    """Whether kernels for ``elf`` / ``ptx`` run on GPU ``arch``: machine
    code of the same major version and no newer minor, or PTX of no newer
    architecture (the driver compiles it)."""
    return any(a // 10 == arch // 10 and a <= arch
               for a in elf) or any(a <= arch for a in ptx)


def check_mmcv_build(device: torch.device) -> str:
    import mmcv
    from mmcv.ops import get_compiling_cuda_version
    ext = importlib.util.find_spec('mmcv._ext').origin
    cuda = get_compiling_cuda_version()
    if device.type != 'cuda':
        built = 'without CUDA' if cuda == 'not available' else \
            f'with CUDA {cuda}'
        return f'mmcv {mmcv.__version__} ops load (built {built})'
    if cuda == 'not available':
        raise CheckFailed('mmcv ops were built without CUDA: reinstall with '
                          'FORCE_CUDA=1 bash tools/install.sh (README)')
    major, minor = torch.cuda.get_device_capability(device)
    arch = 10 * major + minor
    elf, ptx = fatbin_archs(ext)
    held = ' '.join([f'sm_{a}' for a in sorted(elf)] +
                    [f'compute_{a}' for a in sorted(ptx)]) or 'none'
    if not runs_on(arch, elf, ptx):
        raise CheckFailed(
            f'mmcv CUDA kernels are for {held}, not for this GPU (sm_{arch}):'
            f' rebuild with TORCH_CUDA_ARCH_LIST="{major}.{minor}" '
            'FORCE_CUDA=1 bash tools/install.sh')
    return f'mmcv ops load: CUDA {cuda}, kernels {held} (GPU sm_{arch})'


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def check_mmcv_ops(device: torch.device) -> str:
    from mmcv.ops import RoIAlign, nms
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=gen) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(300, 2, generator=gen) * 60],
                      1)
    scores = torch.rand(300, generator=gen)
    keep = nms(boxes, scores, 0.5)[1]
    feats = torch.randn(2, 8, 32, 32, generator=gen)
    rois = torch.cat([torch.tensor([[0.], [1.]]).repeat(8, 1), boxes[:16] / 2],
                     1)
    roi_align = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=2)

    def pooled(where):
        x = feats.to(where).requires_grad_(True)
        out = roi_align(x, rois.to(where))
        out.pow(2).sum().backward()
        return out, x.grad

    out, grad = pooled('cpu')
    if not (0 < len(keep) < len(boxes)) or not out.abs().sum() > 0:
        raise CheckFailed('mmcv nms / RoIAlign give empty results on cpu')
    if device.type != 'cuda':
        return (f'nms ({len(keep)} of {len(boxes)} boxes kept) and RoIAlign '
                'forward / backward on cpu tensors')
    keep_dev = nms(boxes.to(device), scores.to(device), 0.5)[1].cpu()
    if not torch.equal(keep_dev.sort().values, keep.sort().values):
        raise CheckFailed(f'mmcv nms on {device} keeps {len(keep_dev)} boxes,'
                          f' on cpu {len(keep)}')
    out_dev, grad_dev = pooled(device)
    err = max(_max_rel(out_dev, out), _max_rel(grad_dev, grad))
    if err > DEVICE_TOL:
        raise CheckFailed(f'mmcv RoIAlign on {device} differs from cpu by '
                          f'{err:.1e} (relative)')
    return (f'nms and RoIAlign forward / backward on {device} tensors match '
            f'cpu (rel. err. {err:.1e})')


def _smt(arch=None):
    from smt_mm.models import SMT
    torch.manual_seed(0)
    model = SMT(
        arch or dict(SMT.arch_zoo['tiny'], **CHECK_ARCH),
        out_indices=(0, 1, 2, 3))
    model.init_weights()
    return model


def _forward_backward(model, x, device):
    """Stage outputs and the gradients of input and parameters for a fixed
    random projection of the outputs, in fp32 on ``device``."""
    model = model.to(device).train()
    x = x.to(device).requires_grad_(True)
    outs = model(x)
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen).to(device)).sum()
               for o in outs)
    loss.backward()
    return outs, [x.grad] + [p.grad for p in model.parameters()]


def check_smt(device: torch.device) -> str:
    import copy
    model = _smt()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    outs, grads = _forward_backward(copy.deepcopy(model), x, 'cpu')
    if not all(t.isfinite().all() for t in list(outs) + grads):
        raise CheckFailed('SMT forward / backward on cpu is not finite')
    if device.type != 'cuda':
        return 'SMT forward and backward on cpu: finite'
    tf32 = torch.backends.cuda.matmul.allow_tf32, \
        torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # compare in true fp32
    torch.backends.cudnn.allow_tf32 = False
    try:
        outs_dev, grads_dev = _forward_backward(model, x, device)
    finally:
        torch.backends.cuda.matmul.allow_tf32, \
            torch.backends.cudnn.allow_tf32 = tf32
    out_err = max(_max_rel(a, b) for a, b in zip(outs_dev, outs))
    grad_err = max(_max_rel(a, b) for a, b in zip(grads_dev, grads))
    if max(out_err, grad_err) > DEVICE_TOL:
        raise CheckFailed(
            f'SMT on {device} differs from cpu: outputs {out_err:.1e}, '
            f'gradients {grad_err:.1e} (relative; allowed {DEVICE_TOL:g})')
    return (f'SMT forward and backward on {device} match cpu (rel. err. '
            f'outputs {out_err:.1e}, gradients {grad_err:.1e})')


def train_step(model, x, device, dtype: Optional[torch.dtype], optimizer,
               scaler) -> float:
    """Forward, backward and an AdamW step under autocast ``dtype``;
    returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(
            device.type, dtype=dtype or torch.bfloat16, enabled=dtype
            is not None):
        loss = sum(o.float().square().mean() for o in model(x))
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def check_amp(device: torch.device, dtype: torch.dtype) -> str:
    model = _smt().to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fp16 = dtype == torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    x = torch.randn(2, 3, 64, 64, device=device)
    losses = [
        train_step(model, x, device, dtype, optimizer, scaler)
        for _ in range(3)
    ]
    finite = all(math.isfinite(v)
                 for v in losses) and all(p.isfinite().all()
                                          for p in model.parameters())
    name = str(dtype).split('.')[-1]
    if not finite:
        raise CheckFailed(f'{name} autocast train steps on {device} are not '
                          f'finite (losses {losses})')
    scaling = ' with loss scaling' if fp16 else ''
    return (f'3 {name} autocast train steps{scaling} on {device}: finite '
            f'(loss {losses[0]:.4f} -> {losses[-1]:.4f})')


def throughput(device: torch.device, arch: str, batch: int, size: int,
               seconds: float) -> str:
    """Train-step images/s of SMT ``arch`` for about ``seconds``."""
    model = _smt(arch).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = None
    if device.type == 'cuda':
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else \
            torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    x = torch.randn(batch, 3, size, size, device=device)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    for _ in range(2):  # warm-up: kernel selection, allocator
        train_step(model, x, device, dtype, optimizer, scaler)
    sync()
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:
        train_step(model, x, device, dtype, optimizer, scaler)
        steps += 1
        sync()
    elapsed = time.perf_counter() - start
    precision = f'{str(dtype).split(".")[-1]} autocast' if dtype else 'fp32'
    return (f'SMT-{arch} train step, {size}x{size} batch {batch}, '
            f'{precision} on {device}: {steps * batch / elapsed:.1f} '
            f'images/s ({steps} steps in {elapsed:.1f} s)')


def run_checks(checks: List[Tuple[str, Callable[[], str]]],
               print_fn=print) -> List[str]:
    """Run each ``(name, check)``, printing one ``ok`` or ``FAIL`` line per
    check; returns the names of the failed ones."""
    failed = []
    for name, check in checks:
        try:
            line = f'ok    {name:<11} {check()}'
        except Exception as err:
            failed.append(name)
            reason = ' '.join(str(err).split()) or type(err).__name__
            if not isinstance(err, CheckFailed):
                reason = f'{type(err).__name__}: {reason}'
            line = f'FAIL  {name:<11} {reason}'
        print_fn(line, flush=True)
    return failed


def checks_for(device: torch.device, arch: str, batch: int, size: int,
               seconds: float) -> List[Tuple[str, Callable[[], str]]]:
    """The checks of this device, in order."""
    checks = [
        ('mmcv build', lambda: check_mmcv_build(device)),
        ('mmcv ops', lambda: check_mmcv_ops(device)),
        ('smt', lambda: check_smt(device)),
        ('amp bf16', lambda: check_amp(device, torch.bfloat16)),
    ]
    if device.type == 'cuda':
        checks.append(('amp fp16', lambda: check_amp(device, torch.float16)))
    if seconds > 0:
        checks.append(('throughput',
                       lambda: throughput(device, arch, batch, size, seconds)))
    return checks


def skipped_on_cpu() -> Dict[str, str]:
    """What a CUDA device would add to the checks."""
    return {
        'mmcv build': 'kernels for this GPU architecture',
        'mmcv ops': 'nms / RoIAlign on CUDA tensors against cpu',
        'smt': 'forward / backward on CUDA against cpu',
        'amp fp16': 'fp16 autocast steps with loss scaling',
    }


def env_summary() -> Dict[str, str]:
    """Settings that change what the checks measure."""
    keys = ('CUDA_VISIBLE_DEVICES', 'OMP_NUM_THREADS', 'SMT_FUSED_ATTN')
    return {k: os.environ[k] for k in keys if k in os.environ}
