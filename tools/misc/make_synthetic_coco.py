# Copyright (c) SMT-MM contributors. All rights reserved.
"""Write the synthetic COCO-format instance segmentation dataset.

    python tools/misc/make_synthetic_coco.py data/synthetic_coco
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from smt_mm.utils.synthetic_coco import make_synthetic_coco  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/synthetic_coco')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, nargs=2, default=(128, 128),
                        metavar=('H', 'W'))
    args = parser.parse_args(argv)
    make_synthetic_coco(args.out_dir, args.num_train, args.num_val,
                        args.seed, tuple(args.size))
    print(f'wrote {args.num_train} train / {args.num_val} val images to '
          f'{args.out_dir}')


if __name__ == '__main__':
    main()
