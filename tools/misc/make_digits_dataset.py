# Copyright (c) SMT-MM contributors. All rights reserved.
"""Write scikit-learn's handwritten digits (real scans, bundled, no download)
as an ImageNet-style folder dataset for configs/cls/smt_t_digits.py.

    python tools/misc/make_digits_dataset.py [OUT_DIR] [--val-fraction 0.2]
"""
import argparse

from smt_mm.datasets.digits import make_digits_dataset


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/digits')
    parser.add_argument(
        '--val-fraction',
        type=float,
        default=0.2,
        help='share of each class held out for validation')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--limit', type=int, help='keep only the first N images of each split')
    args = parser.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        parser.error('--val-fraction must be between 0 and 1')
    counts = make_digits_dataset(args.out_dir, args.val_fraction, args.seed,
                                 args.limit)
    print(f'wrote {counts["train"]} train / {counts["val"]} val digits to '
          f'{args.out_dir}')


if __name__ == '__main__':
    main()
