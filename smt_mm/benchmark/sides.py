# Copyright (c) SMT-MM contributors. All rights reserved.
"""The compared models: every side computes the same features from the same
weights.

* ``fast``: :class:`smt_mm.models.SMT` as it computes;
* ``official``: the official repository's ``models/smt.py`` loaded from a
  path (:mod:`.official`);
* ``compiled``: ``torch.compile`` of the fast model.

The features are the stage-4 map after its norm, averaged over positions
(the official ``forward_features``); a train step is forward, backward of a
fixed random projection of those features, and an AdamW step (with a
GradScaler for fp16).
"""
from typing import Callable, Dict, List, Optional

import torch

from smt_mm.models import SMT
from smt_mm.models.utils import convert_official_key

ARCH_NAMES = dict(t='tiny', s='small', b='base', l='large')
PRECISIONS = ('fp32', 'bf16', 'fp16', 'amp')
SIDES = ('fast', 'official', 'compiled')


def arch_name(arch: str) -> str:
    """The preset name of a short (``t``) or long (``tiny``) arch."""
    return ARCH_NAMES.get(arch, arch)


def amp_dtype(device: torch.device, precision: str) -> Optional[torch.dtype]:
    """The autocast dtype of ``precision``; None for fp32.

    ``amp`` means bf16 where the device supports it, else fp16.
    """
    if precision == 'fp32':
        return None
    if precision == 'amp':
        bf16 = device.type != 'cuda' or torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    return dict(bf16=torch.bfloat16, fp16=torch.float16)[precision]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` to ``dtype``, or a disabled one for None."""
    return torch.autocast(
        device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


class Features(torch.nn.Module):
    """Pooled stage-4 features (B, C) of one side.

    Args:
        model: our ``SMT`` (``out_indices=(3, )``) or the official model.
        official: whether ``model`` is the official one.
    """

    def __init__(self, model: torch.nn.Module, official: bool):
        super().__init__()
        self.model = model
        self.official = official

    def forward(self, x):
        if self.official:
            return self.model.forward_features(x)
        return self.model(x)[-1].mean((2, 3))


def build_sides(arch: str, sides: List[str], official_path: Optional[str],
                device: torch.device) -> Dict[str, Features]:
    """One model per side, all with the same weights.

    Args:
        arch: a preset, short or long.
        sides: names out of :data:`SIDES`, in the order of the result.
        official_path: the official ``models/smt.py``; needed for the
            ``official`` side, whose initialization all sides then share.
        device: where the models go.
    """
    name = arch_name(arch)
    torch.manual_seed(0)
    ours = SMT(name, out_indices=(3, ))
    ours.init_weights()
    state = ours.state_dict()
    models = {}
    if official_path and 'official' in sides:
        from .official import (build_official, load_official_module,
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
        features = Features(model, official=False)
        if side == 'compiled':
            features = torch.compile(features, dynamic=False)
        models[side] = features
    return {side: models[side].to(device) for side in sides}


def projection(dims: int, device) -> torch.Tensor:
    """The fixed random vector a train step's loss projects features on."""
    gen = torch.Generator().manual_seed(1)
    return torch.randn(dims, generator=gen).to(device)


def make_train_step(model, device, dtype) -> Callable:
    """A closure doing forward, backward and an AdamW step on its input."""
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


def forward_fn(model, device, dtype) -> Callable:
    """A closure running an eval forward (``no_grad``) on its input."""

    def run(x):
        with torch.no_grad(), autocast(device, dtype):
            model(x)

    return run


def compare_sides(models: Dict[str, Features], device, size: int) -> Dict:
    """How far every side is from the first, in fp32.

    Args:
        models: sides as :func:`build_sides` returns them.
        device: where they are.
        size: side of the two square test images.

    Returns:
        Per side but the first: the max abs difference of the eval
        features (and their scale) and the max relative difference of the
        parameter gradients in train mode. Gradients are matched by our
        parameter names (official names converted).
    """
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
    inner = getattr(model, '_orig_mod', model)
    grads = {}
    for name, param in inner.model.named_parameters():
        if param.grad is None:
            continue
        key = convert_official_key(name) if inner.official else name
        if key is not None:
            grads[key] = param.grad.detach().float().clone()
    return grads


def _max_rel_diff(grads: Dict, ref: Dict) -> float:
    """Max over tensors of |g - g_ref|_max / |g_ref|_max.

    Tensors whose reference gradient is below 1e-3 of the largest are
    compared against the largest instead.
    """
    scale = max(g.abs().max().item() for g in ref.values())
    worst = 0.
    for key, g_ref in ref.items():
        denom = max(g_ref.abs().max().item(), 1e-3 * scale)
        worst = max(worst, (grads[key] - g_ref).abs().max().item() / denom)
    return worst
