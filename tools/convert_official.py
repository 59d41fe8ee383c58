# Copyright (c) SMT-MM contributors. All rights reserved.
"""Convert an official SMT release file into a checkpoint of this toolkit.

    python tools/convert_official.py SRC DST [--arch NAME|JSON | --config CFG]
        [--head-rows FILE] [--overwrite]

SRC is one of the official ImageNet files (smt_tiny.pth ... smt_large_22k.pth,
state dict under ``model``). DST holds ``backbone.*`` and ``head.fc.*`` under
``state_dict``, which ``tools/test.py configs/cls/<config>.py DST`` loads.
The file is read with ``torch.load(weights_only=True)``: a file that would
run code when unpickled is refused. The architecture is the given one
(``--arch``, or the backbone of ``--config``) or else the preset the weights
fit; a mismatch is an error naming the keys and shapes that differ.
``--head-rows`` keeps the classifier rows listed in a text file (one integer
per line), e.g. the ImageNet-1K classes of the 21,841-class L head.
"""
import argparse
import io
import json
import os.path as osp

import torch

import smt_mm
from smt_mm.checkpoint import AtomicLocalBackend, read_checkpoint
from smt_mm.errors import LaunchError
from smt_mm.files import check_output_file
from smt_mm.launch.cli import run_cli
from smt_mm.launch.config import load_config
from smt_mm.models.utils import convert_official_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official release file')
    parser.add_argument('dst', help='converted checkpoint to write')
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        '--arch',
        help="preset name ('tiny' ... 'large') or "
        'a JSON dict of official constructor names')
    which.add_argument(
        '--config',
        help='take the arch (and number of '
        'classes, checked) from this config')
    parser.add_argument(
        '--head-rows',
        help='text file of classifier rows '
        'to keep, one integer per line')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace DST if it exists')
    return parser.parse_args(argv)


def parse_arch(text):
    if text is None or not text.lstrip().startswith('{'):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise LaunchError(f'--arch is not valid JSON: {err}')


def config_model(path):
    """(backbone arch, head num_classes or None) of a config."""
    model = load_config(path).model
    return model.backbone.get('arch', 'tiny'), \
        model.get('head', {}).get('num_classes')


def read_rows(path):
    try:
        with open(path) as f:
            return [int(line) for line in f if line.strip()]
    except (OSError, ValueError) as err:
        raise LaunchError(f'--head-rows {path}: {err}')


def save_atomically(obj, path):
    """A crash while writing never leaves a partial DST."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    AtomicLocalBackend().put(buffer.getvalue(), path)


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.dst, 'DST', [args.src], args.overwrite)
    arch, num_classes = parse_arch(args.arch), None
    if args.config:
        arch, num_classes = config_model(args.config)
    rows = read_rows(args.head_rows) if args.head_rows else None
    # errors here (unsafe, truncated or mismatching file) print as one line
    state_dict, meta = convert_official_checkpoint(
        read_checkpoint(args.src), arch, rows, source=args.src)
    if num_classes is not None and meta['num_classes'] not in (0, num_classes):
        raise LaunchError(
            f'{args.src} has a {meta["num_classes"]}-class head but '
            f'{args.config} expects {num_classes} classes' +
            ('' if rows else ' (select rows with --head-rows)'))
    meta.update(
        converted_from=osp.basename(args.src),
        smt_mm_version=smt_mm.__version__)
    save_atomically(dict(meta=meta, state_dict=state_dict), args.dst)
    print(f'{args.src} -> {args.dst}: arch {meta["arch"]!r}, '
          f'{len(state_dict)} tensors, '
          f'{meta["num_classes"] or "no"}-class head')


if __name__ == '__main__':
    run_cli(main)
