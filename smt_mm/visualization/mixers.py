# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT's token mixers seen from outside: Scale-Aware Modulation (per-head
multi-scale conv outputs and the aggregated modulator) and global attention
(one query's attention per head).

A forward hook on each mixer records its input tokens and output. The
intermediates are recomputed here from that input and the mixer's weights
(SAM's forward does not call its head convs as modules, so no hook sees
them), and each recomputation is checked against the recorded output so a
change of the mixers in ``smt.py`` cannot silently draw wrong maps.
"""
import contextlib
import re
from typing import Dict, Iterator, List, NamedTuple, Sequence, Tuple

import torch
import torch.nn.functional as F

from smt_mm.models.backbones.smt import MSA, SAM

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
    """Call ``run()`` and return, per mixer name, the (tokens, hw_shape,
    output) of its (last) call, detached."""
    calls = {}

    def make_hook(name):

        def hook(module, args, kwargs, output):
            hw_shape = args[1] if len(args) > 1 else kwargs['hw_shape']
            calls[name] = (args[0].detach(), tuple(hw_shape), output.detach())

        return hook

    with forward_hooks([(m.name, m.module) for m in mixers],
                       make_hook,
                       with_kwargs=True), torch.no_grad():
        run()
    return calls


def _as_image(tokens: torch.Tensor, hw_shape: Tuple[int, int]):
    """(B, N, C) tokens as a (B, C, H, W) map."""
    batch, _, channels = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, channels, *hw_shape)


def _conv(conv, x):
    """``conv`` applied functionally, so no hook of anyone else fires."""
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding,
                    conv.dilation, conv.groups)


def _check(name: str, recomputed: torch.Tensor, recorded: torch.Tensor):
    error = (recomputed - recorded).abs().max().item()
    if error > 1e-3 * recorded.abs().max().item() + 1e-5:
        raise RuntimeError(
            f'{name}: the recomputed output differs from the module\'s by '
            f'{error:.3g}; the mixer changed in smt.py and '
            'smt_mm/visualization/mixers.py needs the same change')


def sam_maps(sam: SAM, x: torch.Tensor, hw_shape, output=None):
    """Per-head conv outputs and the modulator of one SAM call.

    Args:
        sam (SAM): The mixer.
        x (Tensor): Its input tokens (B, N, C).
        hw_shape (tuple): Token grid (H, W).
        output (Tensor, optional): Its recorded output, to check against.

    Returns:
        tuple: a list of (B, C / heads, H, W) head outputs (head ``i`` is the
        depthwise conv of kernel ``3 + 2i``) and the (B, C, H, W) modulator
        that multiplies the value branch.
    """
    heads = sam.num_heads
    s = F.linear(x, sam.s.weight, sam.s.bias)
    outs = [
        _conv(conv, _as_image(part, hw_shape))
        for conv, part in zip(sam.local_convs, s.chunk(heads, dim=-1))
    ]
    # channel c * heads + i holds channel c of head i
    mixed = torch.stack(outs, dim=2).flatten(1, 2)
    bn = sam.bn
    hidden = F.batch_norm(
        _conv(sam.proj0, mixed), bn.running_mean, bn.running_var, bn.weight,
        bn.bias, False, 0., bn.eps)
    hidden = F.gelu(
        hidden, approximate=getattr(sam.act, 'approximate', 'none'))
    modulator = _conv(sam.proj1, hidden)
    if output is not None:
        value = F.linear(x, sam.v.weight, sam.v.bias)
        tokens = modulator.flatten(2).transpose(1, 2)
        _check('SAM', F.linear(value * tokens, sam.proj.weight, sam.proj.bias),
               output)
    return outs, modulator


def msa_attention(msa: MSA,
                  x: torch.Tensor,
                  hw_shape,
                  query: int,
                  output=None) -> torch.Tensor:
    """The attention of token ``query`` over all tokens, per head, as
    (B, heads, H, W); the query's output token is checked against
    ``output`` when given."""
    B, N, C = x.shape
    heads = msa.num_heads
    q = F.linear(x[:, query], msa.q.weight, msa.q.bias).view(B, heads, 1, -1)
    kv = F.linear(x, msa.kv.weight, msa.kv.bias)
    k, v = kv.view(B, N, 2, heads, -1).permute(2, 0, 3, 1, 4)
    scale = getattr(msa, 'scale', (C // heads)**-0.5)
    attn = (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)
    if output is not None:
        mixed = (attn @ v).reshape(B, C)
        local = _conv(msa.local_conv, _as_image(kv[..., C:], hw_shape))
        mixed = mixed + local.flatten(2)[:, :, query]
        _check('MSA', F.linear(mixed, msa.proj.weight, msa.proj.bias),
               output[:, query])
    return attn.view(B, heads, *hw_shape)


def stage_stride(stage: int) -> int:
    """Input pixels per token side in ``stage`` (from 1): 4, 8, 16, 32."""
    return 2**(stage + 1)


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


def _sam_panels(mixer, x, hw_shape, output):
    outs, modulator = sam_maps(mixer.module, x, hw_shape, output)
    titles = [
        f'head {i + 1}: {conv.kernel_size[0]}x{conv.kernel_size[1]} conv'
        for i, conv in enumerate(mixer.module.local_convs)
    ]
    maps = [_mean_abs(out[0]) for out in outs] + [_mean_abs(modulator[0])]
    return MixerMaps(mixer, titles + ['aggregated modulator'],
                     torch.stack(maps))


def _msa_panels(mixer, x, hw_shape, output, query_xy):
    query = query_token(query_xy, stage_stride(mixer.stage), hw_shape)
    attn = msa_attention(mixer.module, x, hw_shape, query, output)[0]
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
            x, hw_shape, output = calls[mixer.name]
            if mixer.kind == 'SAM':
                results.append(_sam_panels(mixer, x, hw_shape, output))
            else:
                results.append(
                    _msa_panels(mixer, x, hw_shape, output, query_xy))
    return results
