# Copyright (c) SMT-MM contributors. All rights reserved.
"""Write a synthetic dataset (deterministic, no download).

    python tools/misc/make_synthetic_data.py coco [OUT_DIR]   # instances
    python tools/misc/make_synthetic_data.py ade [OUT_DIR]    # semantic seg

Refuses a non-empty OUT_DIR unless --overwrite is given.
"""
import argparse
import os
import os.path as osp

from smt_mm.datasets.synthetic_ade import make_synthetic_ade
from smt_mm.datasets.synthetic_coco import make_synthetic_coco
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import run_cli

# kind: (writer, default folder, default train / val sizes)
KINDS = {
    'coco': (make_synthetic_coco, 'data/synthetic_coco', 240, 60),
    'ade': (make_synthetic_ade, 'data/synthetic_ade', 200, 50),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'kind',
        choices=sorted(KINDS),
        help='coco: COCO-format instance segmentation; '
        'ade: ADE20K-format semantic segmentation')
    parser.add_argument('out_dir', nargs='?')
    parser.add_argument('--num-train', type=int)
    parser.add_argument('--num-val', type=int)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--size', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='write into OUT_DIR even if it is not empty')
    args = parser.parse_args(argv)
    writer, out_dir, num_train, num_val = KINDS[args.kind]
    out_dir = args.out_dir or out_dir
    if osp.isdir(out_dir) and os.listdir(out_dir) and not args.overwrite:
        raise LaunchError(f'{out_dir} is not empty; pass --overwrite to write '
                          'the dataset over its files, or choose another '
                          'folder')
    num_train = args.num_train or num_train
    num_val = args.num_val or num_val
    writer(out_dir, num_train, num_val, args.seed, tuple(args.size))
    print(f'wrote {num_train} train / {num_val} val images to {out_dir}')


if __name__ == '__main__':
    run_cli(main)
