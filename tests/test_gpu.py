# Copyright (c) SMT-MM contributors. All rights reserved.
"""The GPU tier: runs wherever CUDA is available (``pytest -m gpu`` selects
it alone) and is skipped elsewhere.

Covers the fast path on CUDA in fp32 and under autocast (bf16, fp16, with
SDPA restricted to its fused kernels), mmcv's CUDA ops on the backbone's
outputs, one Mask R-CNN and one UPerNet training iteration with ``--amp``,
``tools/dist_train.sh CONFIG 1`` on the GPU, and a 2-process CPU run on the
same machine.
"""
import os.path as osp
import re
import sys

import pytest
import torch
from helpers import (MINI_ARCH, assert_finite_losses, run_tool, train_log,
                     train_tiny_det, write_tiny_det_config)
from helpers.reference_smt import ReferenceSMT

from smt_mm.models import SMT

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device'),
]
GPU_ARCH = dict(MINI_ARCH, embed_dims=[32, 64, 128, 256], depths=[1, 2, 2, 1])
# autocast dtype -> largest error allowed, relative to the fp32 output scale
AUTOCAST_TOL = {torch.bfloat16: 0.08, torch.float16: 0.02}


@pytest.fixture
def no_tf32():
    # cuDNN convolutions use TF32 by default: compare in true fp32
    saved = torch.backends.cudnn.allow_tf32, \
        torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, \
        torch.backends.cuda.matmul.allow_tf32 = saved


def _model(impl='fast'):
    """The SMT model on the GPU, or (``'reference'``) its plain reference
    computation over the same weights."""
    torch.manual_seed(0)
    model = SMT(GPU_ARCH)
    model.init_weights()
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():  # non-trivial BN statistics to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen))
            m.running_var.copy_(0.5 +
                                torch.rand(m.num_features, generator=gen))
    model = model.cuda()
    return ReferenceSMT(model) if impl == 'reference' else model


def _outputs_and_grads(model, x, dtype=None, train=True):
    """Stage outputs (fp32) and the gradients of the input and of every
    parameter for a fixed random projection of the outputs."""
    model.train(train)
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.autocast(
            'cuda', dtype=dtype or torch.float16, enabled=dtype is not None):
        outs = [o.float() for o in model(x)]
    gen = torch.Generator(device='cuda').manual_seed(5)
    loss = sum((o * torch.randn(o.shape, generator=gen, device='cuda')).sum()
               for o in outs)
    loss.backward()
    grads = [x.grad] + [p.grad for p in model.parameters()]
    model.load_state_dict(state)  # undo the BN statistics update
    return [o.detach() for o in outs], grads


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_cuda_fast_matches_reference_fp32(no_tf32, train):
    fast, ref = _model('fast'), _model('reference')
    x = torch.randn(2, 3, 97, 65, device='cuda')
    fast_outs, fast_grads = _outputs_and_grads(fast, x, train=train)
    ref_outs, ref_grads = _outputs_and_grads(ref, x, train=train)
    for f, r in zip(fast_outs, ref_outs):
        assert _rel_err(f, r) < 1e-5
    scale = max(g.abs().max().item() for g in ref_grads)
    for f, r in zip(fast_grads, ref_grads):
        assert (f - r).abs().max().item() <= \
            1e-4 * r.abs().max().item() + 1e-6 * scale


@pytest.mark.parametrize(
    'dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_cuda_autocast_matches_fp32(no_tf32, dtype):
    """Under autocast both paths stay within the dtype's rounding of the
    fp32 result, the fast path no worse than the reference path, and the
    gradients point the same way."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    fast, ref = _model('fast'), _model('reference')
    x = torch.randn(2, 3, 96, 128, device='cuda')
    exact_outs, exact_grads = _outputs_and_grads(ref, x)
    # the fast path must find a fused attention kernel under autocast
    with sdpa_kernel(
        [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        fast_outs, fast_grads = _outputs_and_grads(fast, x, dtype)
    ref_outs, _ = _outputs_and_grads(ref, x, dtype)
    for exact, f, r in zip(exact_outs, fast_outs, ref_outs):
        assert _rel_err(f, exact) < AUTOCAST_TOL[dtype]
        assert _rel_err(f, exact) <= 2 * _rel_err(r, exact) + 1e-3
    flat = torch.cat([g.flatten().float() for g in fast_grads])
    exact_flat = torch.cat([g.flatten() for g in exact_grads])
    assert torch.isfinite(flat).all()
    cosine = torch.nn.functional.cosine_similarity(flat, exact_flat, dim=0)
    assert cosine.item() > 0.99


def test_cuda_gradients_keep_parameter_strides():
    # DDP's bucket views take each parameter's strides: a gradient with
    # other strides costs a copy per step (and its warning).
    model = _model('fast').train()
    sum(o.sum()
        for o in model(torch.randn(2, 3, 64, 64, device='cuda'))).backward()
    for name, p in model.named_parameters():
        assert p.grad.stride() == p.stride(), name


def _mmcv_ops():
    try:
        import mmcv.ops
    except ImportError as exc:  # a build without compiled ops
        pytest.skip(f'mmcv has no compiled ops: {exc}')
    return mmcv.ops


def test_mmcv_cuda_roi_align_and_nms_on_backbone_outputs():
    from torchvision.ops import nms as tv_nms
    from torchvision.ops import roi_align as stride_aware_roi_align
    ops = _mmcv_ops()
    outs = _model('fast').eval()(torch.rand(1, 3, 64, 96, device='cuda'))
    rois = torch.tensor([[0., 2., 3., 12., 10.], [0., 0., 0., 20., 15.]],
                        device='cuda')
    pooled = ops.roi_align(outs[0], rois, (7, 7), 1.0, 2, 'avg', True)
    expected = stride_aware_roi_align(outs[0], rois, (7, 7), 1.0, 2, True)
    torch.testing.assert_close(pooled, expected)
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(50, 2, generator=gen) * 20],
                      1).cuda()
    scores = torch.rand(50, generator=gen).cuda()
    _, keep = ops.nms(boxes, scores, 0.5)
    assert torch.equal(keep.sort().values,
                       tv_nms(boxes, scores, 0.5).sort().values)


def _assert_trained_on_gpu(log):
    assert_finite_losses(log)
    # mmengine logs the CUDA memory of each iteration
    assert re.search(r'\bmemory: \d+', log), log[-2000:]


def test_maskrcnn_amp_iteration_on_gpu(tmp_path):
    _mmcv_ops()
    _, log = train_tiny_det(tmp_path, '--amp')
    assert 'AmpOptimWrapper' in log
    _assert_trained_on_gpu(log)


def test_upernet_amp_iteration_on_gpu(tmp_path):
    from smt_mm.datasets.synthetic_ade import make_synthetic_ade
    data = tmp_path / 'ade'
    make_synthetic_ade(str(data), num_train=4, num_val=2)
    work = tmp_path / 'work'
    run_tool([
        sys.executable, 'tools/train.py', 'configs/seg/smt_t_upernet_synth.py',
        '--amp', '--work-dir',
        str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.logger.interval=1'
    ])
    log = train_log(str(work))
    assert 'AmpOptimWrapper' in log
    _assert_trained_on_gpu(log)


@pytest.mark.parametrize(
    'nproc,gpu', [(1, True), (2, False)], ids=['1gpu', '2cpu'])
def test_dist_train(tmp_path, nproc, gpu):
    """tools/dist_train.sh on the GPU (nccl), and with the GPU hidden on two
    CPU processes (gloo); DDP must not have to copy any gradient."""
    if gpu:
        _mmcv_ops()
    config = write_tiny_det_config(
        tmp_path, num_train=4, batch_size=2, max_epochs=1)
    work = tmp_path / 'work'
    env = dict(PYTHON=sys.executable, PORT=str(29700 + nproc))
    if not gpu:
        env['CUDA_VISIBLE_DEVICES'] = ''
    proc = run_tool([
        'bash', 'tools/dist_train.sh', config,
        str(nproc), '--work-dir',
        str(work)
    ],
                    env=env,
                    timeout=600)
    output = proc.stdout + proc.stderr
    assert 'Grad strides do not match' not in output
    log = train_log(str(work))
    if gpu:
        _assert_trained_on_gpu(log)
    else:
        assert_finite_losses(log)
    assert osp.isfile(osp.join(str(work), 'epoch_1.pth'))
