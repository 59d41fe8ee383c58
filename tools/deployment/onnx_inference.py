# Copyright (c) SMT-MM contributors. All rights reserved.
"""Run an ONNX file written by export_onnx.py in onnxruntime on one image,
with the config's preprocessing.

    python tools/deployment/onnx_inference.py CONFIG MODEL.onnx IMAGE
        [--topk 5] [--out seg.png] [--overwrite]

The exported graph starts after the data preprocessor, so this does what
testing does before the model:

1. the config's test pipeline (resize, crop; annotation loading left
   out), as in ``tools/test.py``: the image as a (3, H, W) uint8 array in
   the loader's channel order (BGR with mmcv);
2. the data preprocessor, in numpy: BGR -> RGB if it converts, ``(x -
   mean) / std``, zero padding of H and W to its ``pad_size_divisor``;
3. onnxruntime on the (1, 3, H, W) float32 array.

It prints the top-k classes (classification), the classes of the label
map (segmentation; ``--out`` draws it beside the image) or the feature
maps' shapes (detection: the graph ends at the neck). The numpy steps
(:mod:`smt_mm.deployment.preprocessing`) are the part to copy into an
application; the pipeline of step 1 can be replaced by any resize giving
the same size.
"""
import argparse
import os.path as osp

import smt_mm  # noqa: F401  (registers SMT's configs)
from smt_mm.deployment.onnx_runtime import (draw_label_map, label_shares,
                                            open_session, output_names, run,
                                            top_classes)
from smt_mm.deployment.preprocessing import (normalise, pipeline_image,
                                             preprocessor_settings)
from smt_mm.files import check_output_file
from smt_mm.launch.cli import run_cli
from smt_mm.launch.config import load_config, task_of


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'config', help='the config the file was exported '
        'from')
    parser.add_argument('model', help='ONNX file (export_onnx.py)')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        '--topk', type=int, default=5, help='classes printed (classifiers)')
    parser.add_argument(
        '--out', help='segmentation: draw the label map to this PNG')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be at least 1, got {args.topk}')
    return args


def segmentation(seg_logits, cfg, image, args):
    """The classes of the label map and their shares; drawn beside the
    image with ``--out``."""
    label_map = seg_logits[0].argmax(0)
    names = output_names(cfg, seg_logits.shape[1])
    shares = label_shares(label_map, names)
    if args.out:
        draw_label_map(image, label_map, names, osp.basename(args.image),
                       args.out)
    return shares


def main(argv=None):
    args = parse_args(argv)
    if args.out:
        check_output_file(args.out, '--out', [args.image], args.overwrite)
    cfg = load_config(args.config)
    task = task_of(cfg)
    session = open_session(args.model)
    image = pipeline_image(cfg, args.image)
    array = normalise(image, preprocessor_settings(cfg))
    outputs = run(session, array)
    size = 'x'.join(map(str, array.shape))
    if task == 'mmpretrain':
        top = top_classes(outputs[0], cfg, args.topk)
        listed = '; '.join(f'{name} ({p:.3f})' for name, p in top)
        print(f'input {size}: top-{len(top)} {listed}')
        return top
    if task == 'mmseg':
        shares = segmentation(outputs[0], cfg, image, args)
        listed = '; '.join(f'{name} {share:.1%}' for name, share in shares)
        drawn = f'; drawn to {args.out}' if args.out else ''
        print(f'input {size}: classes {listed}{drawn}')
        return shares
    shapes = ['x'.join(map(str, o.shape)) for o in outputs]
    print(f'input {size}: feature maps {", ".join(shapes)} (the graph ends '
          'at the neck; boxes need the PyTorch heads)')
    return shapes


if __name__ == '__main__':
    run_cli(main)
