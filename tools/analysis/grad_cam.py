# Copyright (c) SMT-MM contributors. All rights reserved.
"""Grad-CAM of a classification config's SMT: where the image drives a
class score, drawn at a readable size with the class name.

    python tools/analysis/grad_cam.py CONFIG CHECKPOINT IMAGE --out cam.png
        [--target-layers MODULE ...] [--class NAME_OR_INDEX]
        [--overwrite]

The image goes through the config's test pipeline and data preprocessor,
as in testing; the class is the predicted one unless --class names
another. Grad-CAM (pytorch-grad-cam, installed with the tests) weights the
target layer's (B, C, H, W) output by the class score's gradient; SMT's
stages return such maps. The default target is the deepest stage whose
map has at least 4x4 cells at the input size (the last one at 224x224; a
1x1 map, stage 4 of a 32x32 digit, makes a flat picture). The
PNG shows the image as the network sees it and the map blended over it,
with the class name, its probability and the top-3 classes in the
titles; the map is scaled to 0..1 per image (Grad-CAM has no absolute
unit).
"""
import argparse
import os.path as osp

import smt_mm  # noqa: F401  (registers SMT)
from smt_mm.apis import build_model, class_names
from smt_mm.errors import LaunchError
from smt_mm.files import check_output_file
from smt_mm.launch.cli import add_cfg_options, run_cli
from smt_mm.launch.config import load_config, task_of
from smt_mm.visualization import drawing, inputs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='classification config')
    parser.add_argument(
        'checkpoint', help='checkpoint (an official release file too)')
    parser.add_argument('image', help='image file (never modified)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument(
        '--target-layers',
        nargs='+',
        help='modules whose (B, C, H, W) outputs Grad-CAM weighs (default: '
        'the deepest stage whose map is at least 4x4 at this input size: '
        'backbone.stages.3 at 224x224, backbone.stages.1 for 32x32 digits)')
    parser.add_argument(
        '--class',
        dest='target_class',
        help='class name or index to explain (default: the predicted one)')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def pick_class(target, classes, num_classes):
    """--class as an index: a name of ``classes`` or an integer."""
    if classes is not None and target in classes:
        return classes.index(target)
    try:
        index = int(target)
    except ValueError:
        shown = ', '.join(classes[:10]) if classes else 'none known'
        raise LaunchError(f'--class {target!r} is neither a class name '
                          f'(e.g. {shown}) nor an index') from None
    if not 0 <= index < num_classes:
        raise LaunchError(f'--class {index} is out of range: the model has '
                          f'{num_classes} classes (0..{num_classes - 1})')
    return index


# a map of fewer cells gives one weight per image region: no picture
MIN_MAP_SIDE = 4


def default_target(model, inputs) -> str:
    """The deepest backbone stage whose output map is at least
    MIN_MAP_SIDE cells on its short side for ``inputs`` (stage k has
    stride 4 * 2**k)."""
    short = min(inputs.shape[-2:])
    stages = len(model.backbone.stages)
    for k in reversed(range(stages)):
        if -(-short // (4 * 2**k)) >= MIN_MAP_SIDE:
            return f'backbone.stages.{k}'
    return 'backbone.stages.0'


def target_modules(model, names):
    found = []
    for name in names:
        try:
            found.append(model.get_submodule(name))
        except AttributeError:
            raise LaunchError(f'--target-layers: the model has no module '
                              f'{name!r} (e.g. backbone.stages.3)') from None
    return found


def load(args):
    """The model (weights loaded), the checkpoint's meta and the image as
    the network gets it."""
    from smt_mm.models.utils import load_model_weights
    cfg = load_config(args.config, args.cfg_options)
    if task_of(cfg) != 'mmpretrain':
        raise LaunchError(f'grad_cam.py explains classification configs; '
                          f'{args.config} is a {task_of(cfg)} config')
    model = build_model(cfg, None, args.device)
    checkpoint = load_model_weights(model, args.checkpoint)
    model = model.to(args.device).eval()
    sample = inputs.load_image(cfg, model, args.image)
    return cfg, model, checkpoint.get('meta') or {}, sample


def grad_cam(model, layers, image, index):
    """(H, W) Grad-CAM of class ``index`` for the (1, 3, H, W) input,
    scaled to 0..1."""
    import torch
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        raise LaunchError('Grad-CAM needs pytorch-grad-cam: pip install '
                          '"grad-cam==1.4.8"') from None

    class Logits(torch.nn.Module):

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x, mode='tensor')

    cam = GradCAM(model=Logits(model), target_layers=layers)
    try:
        return cam(
            input_tensor=image, targets=[ClassifierOutputTarget(index)])[0]
    except (AttributeError, RuntimeError, ValueError) as err:
        raise LaunchError(f'Grad-CAM failed on --target-layers '
                          f'{" ".join(map(str, layers))}: '
                          f'{type(err).__name__}: {err} (give modules with '
                          '(B, C, H, W) outputs, e.g. backbone.stages.3)')


def main(argv=None):
    import torch
    args = parse_args(argv)
    inputs.check_files(args.checkpoint, args.image)
    check_output_file(args.out, '--out', [args.image], args.overwrite)
    cfg, model, meta, sample = load(args)
    if not args.target_layers:
        args.target_layers = [default_target(model, sample.inputs)]
    layers = target_modules(model, args.target_layers)
    with torch.no_grad():
        probs = model(sample.inputs.to(args.device), mode='tensor').softmax(-1)
    num_classes = probs.shape[-1]
    classes = class_names(cfg, num_classes, meta)

    def name(i):
        return classes[i] if classes else f'class {i}'

    top = probs[0].topk(min(3, num_classes))
    index = top.indices[0].item() if args.target_class is None else \
        pick_class(args.target_class, classes, num_classes)
    cam = grad_cam(model, layers, sample.inputs.to(args.device), index)
    if not cam.max() > cam.min():
        where = ' '.join(args.target_layers)
        print(f'warning: the Grad-CAM map is flat at {where} (a map of too '
              'few cells at this input size, or no positive gradient): try '
              'an earlier stage with --target-layers')
    chosen = 'predicted' if args.target_class is None else 'chosen'
    top3 = ', '.join(
        f'{name(i)} {p:.2f}'
        for p, i in zip(top.values.tolist(), top.indices.tolist()))
    drawing.draw_heatmaps(
        sample.image,
        cam[None], [f'{chosen} "{name(index)}" (p = {probs[0, index]:.2f})'],
        f'Grad-CAM of {osp.basename(args.image)} at '
        f'{", ".join(args.target_layers)}; top-3: {top3}',
        args.out,
        value_label='Grad-CAM, scaled to 0..1 per image (no absolute unit)',
        panel_inches=drawing.PANEL_INCHES * 1.25)
    print(f'{chosen} class: {name(index)} (p = {probs[0, index]:.2f}); '
          f'top-3: {top3}; Grad-CAM drawn to {args.out}')


if __name__ == '__main__':
    run_cli(main)
