# Copyright (c) SMT-MM contributors. All rights reserved.
"""Measure and draw the effective receptive field (ERF) of each SMT stage.

    python tools/analysis/erf.py CONFIG [CHECKPOINT] --out DIR
        [--images DIR_OR_FILES ...] [--num N] [--size S] [--overwrite]

The ERF of a stage: the gradient of the output at the centre of the stage's
map (sum of its ReLU'd channels) with respect to the input, absolute,
summed over colour channels and averaged over N images of SxS pixels (the
given images, short side resized to S and centre-cropped, or uniform noise
images without --images), normalised as the config's data preprocessor
does. Writes ``erf_stageK.png`` per stage and ``erf_stages.png`` (all
stages), log10-scaled, with the squares around the centre that hold 20%,
50% and 99% of the total; their side lengths (pixels) are printed and saved
in ``erf.json``. Without CHECKPOINT the model is randomly initialised.
"""
import argparse
import glob
import json
import os.path as osp

import smt_mm  # noqa: F401  (registers SMT)
from smt_mm.apis import build_model
from smt_mm.checks.dataset import IMAGE_EXTENSIONS
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import add_cfg_options, add_model_args, run_cli
from smt_mm.launch.config import load_config
from smt_mm.visualization import drawing, erf, inputs

OUTPUTS = ('erf_stage*.png', 'erf_stages.png', 'erf.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(parser)
    parser.add_argument('--out', required=True, help='folder for the results')
    parser.add_argument(
        '--images',
        nargs='+',
        help='image files or folders (default: random noise images)')
    parser.add_argument(
        '--num',
        type=int,
        default=8,
        help='number of images to average over (the first N given)')
    parser.add_argument(
        '--size',
        type=int,
        default=512,
        help='input side in pixels, a multiple of 32')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the noise images')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace the results of an earlier run in --out')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    add_cfg_options(parser)
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error('--num must be at least 1')
    if args.size < 32 or args.size % 32:
        parser.error('--size must be a multiple of 32 (the total stride), '
                     f'got {args.size}')
    return args


def list_images(sources, num):
    """The first ``num`` image files of ``sources`` (files, or folders whose
    image files are taken in name order)."""
    files = []
    for source in sources:
        if osp.isdir(source):
            files += sorted(
                p for p in glob.glob(osp.join(source, '*'))
                if p.lower().endswith(IMAGE_EXTENSIONS))
        elif osp.isfile(source):
            files.append(source)
        else:
            raise LaunchError(f'--images: not found: {source}')
    if not files:
        raise LaunchError('--images: no image files found in '
                          f'{" ".join(sources)}')
    return files[:num]


def read_square(path, size):
    """``path`` as a (3, size, size) uint8 BGR tensor: short side resized
    to ``size``, centre crop."""
    import mmcv
    import torch
    image = mmcv.imread(path)
    if image is None:
        raise LaunchError(f'cannot read image {path}')
    height, width = image.shape[:2]
    scale = size / min(height, width)
    image = mmcv.imresize(
        image,
        (max(size, round(width * scale)), max(size, round(height * scale))))
    top = (image.shape[0] - size) // 2
    left = (image.shape[1] - size) // 2
    crop = image[top:top + size, left:left + size]
    return torch.from_numpy(crop.transpose(2, 0, 1).copy())


def noise_images(num, size, seed):
    """``num`` uniform noise images (3, size, size), uint8."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (3, size, size), generator=generator).byte()
        for _ in range(num)
    ]


def network_inputs(model, raw_images, device):
    """Each raw image as a (1, 3, S, S) network input."""
    for raw in raw_images:
        yield inputs.preprocess(model, [raw]).to(device)


def summarise(scores, size):
    """Per stage: the score map, its centre and the mass squares."""
    rows = []
    for stage, (score, stage_hw) in sorted(scores.items()):
        score = score.cpu().numpy()
        centre = erf.centre_of(stage_hw, (size, size))
        sides = erf.square_sides(score, centre)
        rows.append(dict(stage=stage, score=score, centre=centre, sides=sides))
    return rows


def draw_results(rows, title, out_dir):
    """One PNG per stage and one of all stages; returns their paths."""
    paths = [
        drawing.draw_erf([r['score']], [r['sides']], [r['centre']],
                         [f'stage {r["stage"]}'], title,
                         osp.join(out_dir, f'erf_stage{r["stage"]}.png'))
        for r in rows
    ]
    paths.append(
        drawing.draw_erf(
            *zip(*[(r['score'], r['sides'], r['centre'], f'stage {r["stage"]}')
                   for r in rows]), title, osp.join(out_dir,
                                                    'erf_stages.png')))
    return paths


def summary(rows, args, files):
    """What erf.json holds: the inputs and, per stage, the square sides
    (pixels) and the part of the image they cover."""

    def by_fraction(sides, value):
        return {f'{f:.0%}': value(s) for f, s in sorted(sides.items())}

    return dict(
        config=args.config,
        checkpoint=args.checkpoint,
        images=files or f'uniform noise, seed {args.seed}',
        num_images=len(files) or args.num,
        size=args.size,
        stages=[
            dict(
                stage=r['stage'],
                side_px=by_fraction(r['sides'], int),
                area_ratio=by_fraction(
                    r['sides'], lambda s: round(s**2 / args.size**2, 4)))
            for r in rows
        ])


def image_source(model, args, files):
    """The network inputs (a generator) and how to name them."""
    if files:
        raw = (read_square(path, args.size) for path in files)
        source = f'{len(files)} images'
    else:
        raw = noise_images(args.num, args.size, args.seed)
        source = f'{args.num} noise images'
    return network_inputs(model, raw, args.device), source


def print_sides(rows, source, size):
    print(f'ERF over {source} of {size}x{size}: side (px) of the centred '
          'square holding 20% / 50% / 99% of the gradient mass')
    for row in rows:
        sides = ' / '.join(str(s) for _, s in sorted(row['sides'].items()))
        print(f'  stage {row["stage"]}: {sides}')


def main(argv=None):
    args = parse_args(argv)
    inputs.check_files(args.checkpoint)
    files = list_images(args.images, args.num) if args.images else []
    cfg = load_config(args.config, args.cfg_options)
    inputs.prepare_out_dir(args.out, OUTPUTS, args.overwrite, files)
    model = build_model(cfg, args.checkpoint, args.device, inputs.RANDOM_NOTE)
    backbone = inputs.smt_backbone(model)
    images, source = image_source(model, args, files)
    rows = summarise(erf.average_erf(backbone, images), args.size)
    print_sides(rows, source, args.size)
    paths = draw_results(rows, f'ERF, {source}, {args.size}x{args.size}',
                         args.out)
    paths.append(osp.join(args.out, 'erf.json'))
    with open(paths[-1], 'w') as f:
        json.dump(summary(rows, args, files), f, indent=2)
    print('written: ' + ', '.join(paths))


if __name__ == '__main__':
    run_cli(main)
