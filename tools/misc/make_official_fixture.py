# Copyright (c) SMT-MM contributors. All rights reserved.
"""Write the small official-format fixture the parity tests load.

    python tools/misc/make_official_fixture.py --official PATH/models/smt.py \\
        [--out-dir tests/data/official_fixture] [--seed 0] [--overwrite]

The official repository's ``models/smt.py`` (read from ``--official``,
never copied here) builds a 4-stage SMT of 16-128 channels with a 10-class
head; every parameter and BatchNorm statistic is drawn from ``--seed`` so
that no part of the model is at a trivial value. Two files are written:

* ``smt_tiny_official.pth``: ``{'model': state_dict, 'epoch': 299}``, the
  layout of the official release files;
* ``smt_tiny_expected.pth``: ``{'arch': ..., 'cases': [{'input',
  'stages', 'logits'}]}``: one 2x3x64x64 input, the official model's
  output after each stage's norm (NCHW) and its logits, in eval mode.

The parity tests load the first with SMT-MM and compare with the second.
"""
import argparse
import os.path as osp

import torch

from smt_mm.errors import LaunchError
from smt_mm.files import check_output_file
from smt_mm.launch.cli import run_cli
from smt_mm.models import SMT

# The tests' MINI_ARCH (tests/helpers) with a 10-class head.
ARCH = dict(
    embed_dims=[16, 32, 64, 128],
    ca_num_heads=[4, 4, 4, -1],
    sa_num_heads=[-1, -1, 8, 16],
    mlp_ratios=[4, 4, 4, 2],
    qkv_bias=True,
    depths=[1, 2, 3, 1],
    ca_attentions=[1, 1, 1, 0],
    head_conv=3,
    expand_ratio=2,
    num_classes=10)
INPUT_SHAPE = (2, 3, 64, 64)
FILES = ('smt_tiny_official.pth', 'smt_tiny_expected.pth')


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Draw every parameter and BatchNorm statistic from ``seed``: weights
    around their initial scale, norms near identity, variances positive."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith('running_var'):
                tensor.copy_(0.5 +
                             torch.rand(tensor.shape, generator=generator))
            elif name.endswith('running_mean') or name.endswith('bias'):
                tensor.copy_(0.1 * noise)
            elif tensor.dim() == 1:  # norm weights and layer scales
                tensor.copy_(1 + 0.1 * noise)
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(noise / fan_in**0.5)


def official_outputs(model: torch.nn.Module, x: torch.Tensor):
    """The output of each stage's norm as NCHW maps, and the logits."""
    stages = []

    def keep(index):

        def hook(module, args, output):
            stride = SMT.stage_stride(index)
            height, width = x.shape[2] // stride, x.shape[3] // stride
            stages.append(
                output.reshape(len(x), height, width,
                               -1).permute(0, 3, 1, 2).contiguous())

        return hook

    norms = [getattr(model, f'norm{i + 1}') for i in range(4)]
    handles = [
        norm.register_forward_hook(keep(i)) for i, norm in enumerate(norms)
    ]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return stages, logits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--official',
        required=True,
        help="the official repository's models/smt.py")
    parser.add_argument(
        '--out-dir',
        default='tests/data/official_fixture',
        help='where the two files go (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing files')
    args = parser.parse_args(argv)
    from smt_mm.benchmark.official import load_official_module
    if not osp.isfile(args.official):
        raise LaunchError(f'file not found: {args.official} (give the '
                          "official repository's models/smt.py)")
    paths = [osp.join(args.out_dir, name) for name in FILES]
    for path in paths:
        check_output_file(path, 'fixture file', overwrite=args.overwrite)
    if not osp.isdir(args.out_dir):
        raise LaunchError(f'output folder not found: {args.out_dir}')
    module = load_official_module(args.official)
    model = module.SMT(**ARCH)
    randomise(model, args.seed)
    model.eval()
    x = torch.randn(
        INPUT_SHAPE, generator=torch.Generator().manual_seed(args.seed + 1))
    stages, logits = official_outputs(model, x)
    torch.save({'model': model.state_dict(), 'epoch': 299}, paths[0])
    torch.save(
        {
            'arch': dict(ARCH),
            'cases': [dict(input=x, stages=stages, logits=logits)]
        }, paths[1])
    for path in paths:
        print(f'wrote {path} ({osp.getsize(path) / 1024:.0f} KiB)')


if __name__ == '__main__':
    run_cli(main)
