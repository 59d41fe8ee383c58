# Copyright (c) SMT-MM contributors. All rights reserved.
"""Draw SMT's scale-aware modulation maps and attention maps over an image.

    python tools/analysis/vis_modulation.py CONFIG [CHECKPOINT] IMAGE
        --out DIR [--query X Y] [--stages 1 2 3 4] [--overwrite]

Writes one PNG per mixer block of the chosen stages, the image first:
``stageS_blockB_sam.png`` has one panel per modulation head (the output of
its depthwise conv of kernel 3, 5, 7 or 9, mean |value| over the head's
channels) and one for the aggregated modulator (what multiplies the value
branch, mean |value| over channels); ``stageS_blockB_msa.png`` has one panel
per attention head: the attention of the query point over the image.
Stages and blocks count from 1. Every heat-map spans its own min..max,
which the colour bar beside it gives in real values, and is blended over
the image as the network sees it (after the
config's test pipeline, whose size the first panel gives); the query X Y is
a pixel of that image (default: its centre). Works for mmpretrain, mmdet and
mmseg configs whose model.backbone is SMT; without CHECKPOINT the model is
randomly initialised. The maps are read with forward hooks that are removed
afterwards.
"""
import argparse
import os.path as osp

import smt_mm  # noqa: F401  (registers SMT)
from smt_mm.apis import build_model
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import add_cfg_options, add_model_args, run_cli
from smt_mm.launch.config import load_config
from smt_mm.models import SMT
from smt_mm.visualization import drawing, inputs, mixers

OUTPUTS = ('stage*_block*_sam.png', 'stage*_block*_msa.png')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(parser)
    parser.add_argument('image', help='image file (never modified)')
    parser.add_argument('--out', required=True, help='folder for the PNGs')
    parser.add_argument(
        '--query',
        nargs=2,
        type=float,
        metavar=('X', 'Y'),
        help='query pixel of the attention maps, in the image after the '
        'test pipeline (default: its centre)')
    parser.add_argument(
        '--stages',
        nargs='+',
        type=int,
        help='stages to draw, from 1 (default: all)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace the PNGs of an earlier run in --out')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def check_stages(stages, num_stages):
    """The chosen stages, all by default; one line for a bad one."""
    if not stages:
        return list(range(1, num_stages + 1))
    bad = [s for s in stages if not 1 <= s <= num_stages]
    if bad:
        raise LaunchError(f'--stages {bad} out of range; the backbone has '
                          f'stages 1..{num_stages}')
    return sorted(set(stages))


def check_query(query, image):
    """The query pixel, the image centre by default; it must be inside."""
    height, width = image.shape[:2]
    if query is None:
        return (width - 1) / 2, (height - 1) / 2
    x, y = query
    if not (0 <= x < width and 0 <= y < height):
        raise LaunchError(f'--query {x:g} {y:g} is outside the image as the '
                          f'network sees it ({width}x{height}, after the '
                          'test pipeline)')
    return x, y


def draw(result, sample, query, out_dir):
    """One PNG for one mixer's maps; returns its path."""
    mixer = result.mixer
    heat = drawing.to_image_grid(result.maps,
                                 SMT.stage_stride(mixer.stage - 1),
                                 sample.image.shape[:2])
    if mixer.kind == 'SAM':
        what = 'scale-aware modulation, mean |value| per head'
        unit = ('mean |activation| over the channels of the head (last '
                'panel: of the modulator), in feature units')
    else:
        what = f'attention of the query ({query[0]:.0f}, {query[1]:.0f})'
        unit = ("attention weight of each token for the query (a head's "
                f'weights sum to 1 over its {result.maps[0].numel()} tokens)')
    title = (f'stage {mixer.stage}, block {mixer.block} ({mixer.kind}, '
             f'{mixer.name}): {what}')
    path = osp.join(
        out_dir,
        f'stage{mixer.stage}_block{mixer.block}_{mixer.kind.lower()}.png')
    return drawing.draw_heatmaps(
        sample.image,
        heat,
        result.titles,
        title,
        path,
        query=query if mixer.kind == 'MSA' else None,
        value_label=unit)


def main(argv=None):
    args = parse_args(argv)
    inputs.check_files(args.image, args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    inputs.prepare_out_dir(args.out, OUTPUTS, args.overwrite, [args.image])
    model = build_model(cfg, args.checkpoint, args.device, inputs.RANDOM_NOTE)
    backbone = inputs.smt_backbone(model)
    stages = check_stages(args.stages, len(backbone.stages))
    sample = inputs.load_image(cfg, model, args.image)
    query = check_query(args.query, sample.image)
    print(f'image after the test pipeline: {sample.image.shape[1]}x'
          f'{sample.image.shape[0]}; query pixel ({query[0]:g}, '
          f'{query[1]:g})')
    results = mixers.modulation_maps(backbone, sample.inputs, stages, query)
    paths = [draw(result, sample, query, args.out) for result in results]
    print(f'{len(paths)} PNGs written:')
    for path in paths:
        print(f'  {path}')


if __name__ == '__main__':
    run_cli(main)
