# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT's token mixers seen from outside: Scale-Aware Modulation (per-head
multi-scale conv outputs and the aggregated modulator) and global attention
(one query's attention per head).

A forward hook on each mixer records its input tokens; the intermediates
come from running the mixer's own steps (``SAM.head_maps`` /
``SAM.modulator``, ``MSA.qkv`` / ``MSA.attention``) on that input, so the
maps are what the model computes, with no second copy of its maths.
"""
import contextlib
import re
from typing import Dict, Iterator, List, NamedTuple, Sequence

import torch

from smt_mm.models.backbones.smt import MSA, SAM, SMT

_BLOCK_NAME = re.compile(r'(?:^|\.)stages\.(\d+)\.blocks\.(\d+)\.')


class Mixer(NamedTuple):
    """A token mixer of the backbone: ``stage`` and ``block`` count from
    1, ``name`` is its module path, ``kind`` 'SAM' or 'MSA'."""
    stage: int
    block: int
    name: str
    kind: str
    module: torch.nn.Module


class MixerMaps(NamedTuple):
    """The maps drawn for one mixer: ``maps`` is (panels, h, w) at the
    stage's resolution, one title per panel."""
    mixer: Mixer
    titles: List[str]
    maps: torch.Tensor


def find_mixers(backbone, stages: Sequence[int]) -> List[Mixer]:
    """The SAM and MSA mixers of the given stages (counted from 1)."""
    found = []
    for name, module in backbone.named_modules():
        if not isinstance(module, (SAM, MSA)):
            continue
        match = _BLOCK_NAME.search(name + '.')
        if match is None:  # not a block's mixer: nothing to place it by
            continue
        stage, block = (int(g) + 1 for g in match.groups())
        if stage in stages:
            kind = 'SAM' if isinstance(module, SAM) else 'MSA'
            found.append(Mixer(stage, block, name, kind, module))
    return found


@contextlib.contextmanager
def forward_hooks(modules, make_hook, with_kwargs=False) -> Iterator[None]:
    """Register ``make_hook(key)`` on each ``(key, module)`` for the
    duration of the block; the hooks are removed even on an error."""
    handles = []
    try:
        for key, module in modules:
            handles.append(
                module.register_forward_hook(
                    make_hook(key), with_kwargs=with_kwargs))
        yield
    finally:
        for handle in handles:
            handle.remove()


def record_mixers(mixers: Sequence[Mixer], run) -> Dict[str, tuple]:
    """Call ``run()`` and return, per mixer name, the (tokens, hw_shape) of
    its (last) call, detached."""
    calls = {}

    def make_hook(name):

        def hook(module, args, kwargs, output):
            hw_shape = args[1] if len(args) > 1 else kwargs['hw_shape']
            calls[name] = (args[0].detach(), tuple(hw_shape))

        return hook

    with forward_hooks([(m.name, m.module) for m in mixers],
                       make_hook,
                       with_kwargs=True), torch.no_grad():
        run()
    return calls


def sam_maps(sam: SAM, x: torch.Tensor, hw_shape):
    """Per-head conv outputs and the modulator of one SAM call, computed by
    the mixer's own steps (:meth:`SAM.head_maps`, :meth:`SAM.modulator`).

    Args:
        sam (SAM): The mixer.
        x (Tensor): Its input tokens (B, N, C).
        hw_shape (tuple): Token grid (H, W).

    Returns:
        tuple: a list of (B, C / heads, H, W) head outputs (head ``i`` is the
        depthwise conv of kernel ``3 + 2i``) and the (B, C, H, W) modulator
        that multiplies the value branch.
    """
    mixed = sam.head_maps(x, hw_shape)
    return list(mixed.unbind(2)), sam.modulator(mixed).unflatten(2, hw_shape)


def msa_attention(msa: MSA, x: torch.Tensor, hw_shape,
                  query: int) -> torch.Tensor:
    """The attention of token ``query`` over all tokens, per head, as
    (B, heads, H, W), by the mixer's own :meth:`MSA.attention`."""
    q, k, _, _ = msa.qkv(x)
    attn = msa.attention(q[:, :, query:query + 1], k)
    return attn.view(len(x), msa.num_heads, *hw_shape)


def query_token(query_xy, stride: int, hw_shape) -> int:
    """Index of the token whose ``stride`` x ``stride`` cell holds input
    pixel ``query_xy``."""
    x, y = query_xy
    row = min(int(y // stride), hw_shape[0] - 1)
    col = min(int(x // stride), hw_shape[1] - 1)
    return row * hw_shape[1] + col


def _mean_abs(maps: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (H, W): mean magnitude over channels."""
    return maps.abs().mean(dim=0)


def _sam_panels(mixer, x, hw_shape):
    outs, modulator = sam_maps(mixer.module, x, hw_shape)
    titles = [
        f'head {i + 1}: {conv.kernel_size[0]}x{conv.kernel_size[1]} conv'
        for i, conv in enumerate(mixer.module.local_convs)
    ]
    maps = [_mean_abs(out[0]) for out in outs] + [_mean_abs(modulator[0])]
    return MixerMaps(mixer, titles + ['aggregated modulator'],
                     torch.stack(maps))


def _msa_panels(mixer, x, hw_shape, query_xy):
    stride = SMT.stage_stride(mixer.stage - 1)
    query = query_token(query_xy, stride, hw_shape)
    attn = msa_attention(mixer.module, x, hw_shape, query)[0]
    titles = [f'head {i + 1}' for i in range(attn.shape[0])]
    return MixerMaps(mixer, titles, attn)


def modulation_maps(backbone, inputs: torch.Tensor, stages: Sequence[int],
                    query_xy) -> List[MixerMaps]:
    """Run ``backbone`` on ``inputs`` (one image) and return the maps of
    every SAM and MSA block of ``stages``, in network order.

    ``query_xy`` is the (x, y) pixel of ``inputs`` whose attention the MSA
    panels show.
    """
    mixers = find_mixers(backbone, stages)
    calls = record_mixers(mixers, lambda: backbone(inputs[:1]))
    results = []
    with torch.no_grad():
        for mixer in mixers:
            x, hw_shape = calls[mixer.name]
            if mixer.kind == 'SAM':
                results.append(_sam_panels(mixer, x, hw_shape))
            else:
                results.append(_msa_panels(mixer, x, hw_shape, query_xy))
    return results
