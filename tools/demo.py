# Copyright (c) SMT-MM contributors. All rights reserved.
"""Run a model on an image, or on every image of a folder, and save the
drawings: boxes, masks and labels for detection configs, a class overlay
for segmentation configs, the top-5 classes for classification configs.

    python tools/demo.py IMAGE CONFIG CHECKPOINT --out out.png [--overwrite]
    python tools/demo.py FOLDER CONFIG CHECKPOINT --out-dir DIR [--overwrite]

A folder's images (its files with an image extension, sorted by name; not
its subfolders) are drawn by one model, each to ``DIR/<name>.png``. A
checkpoint of another task than the config's (a segmentation file for a
detection config) is refused before the model is built. A drawing never
replaces an input image, nor an existing file unless ``--overwrite`` is
given. For classification, CHECKPOINT may also be an
official SMT release file (converted on the fly and loaded strictly); class
names come from the checkpoint, else the config's dataset, else indices.
"""
import argparse
import contextlib
import io
import os
import os.path as osp

import numpy as np
from mmengine.registry import DefaultScope

import smt_mm  # noqa: F401
from smt_mm.apis import class_names, config_dataset_meta
from smt_mm.errors import LaunchError
from smt_mm.files import check_image, check_output_file
from smt_mm.launch.cli import run_cli
from smt_mm.launch.config import check_writable_dir, load_config, task_of
from smt_mm.visualization.inputs import check_files


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'image', help='image file, or a folder: each image in it')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='output image of one IMAGE (default: demo.png)')
    parser.add_argument(
        '--out-dir',
        help='folder for the drawings, one <image name>.png each '
        '(needed when IMAGE is a folder)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace --out if it exists (never the input image)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='hide detections scoring below this')
    parser.add_argument(
        '--topk',
        type=int,
        default=5,
        help='classes drawn for classification configs')
    parser.add_argument(
        '--min-size',
        type=int,
        default=512,
        help='enlarge smaller images (and the predictions) '
        'to this short side before drawing, so labels stay '
        'readable; 0 keeps the original size')
    return parser.parse_args(argv)


def dataset_meta(model, meta, cfg):
    """Set ``model.dataset_meta``: the checkpoint's, else the config's
    dataset's; returns where the class names came from."""
    if meta.get('dataset_meta'):
        model.dataset_meta = dict(meta['dataset_meta'])
        return 'checkpoint'
    found = config_dataset_meta(cfg)
    if found.get('classes'):
        model.dataset_meta = found
        return 'config'
    model.dataset_meta = {}
    return None


def check_classes(model, source, num_classes):
    """Say once where class names come from when the checkpoint has
    none, and refuse names that do not fit the model."""
    classes = (model.dataset_meta or {}).get('classes')
    if source is None or classes is None:
        print('note: neither the checkpoint nor the config names the '
              'classes; drawing class indices')
        return
    if num_classes is not None and len(classes) != num_classes:
        raise LaunchError(f'the {source} names {len(classes)} classes but '
                          f'the model predicts {num_classes}')
    if source == 'config':
        print(f'class names: from the config ({len(classes)}), the '
              'checkpoint has none')


def detect_and_draw(args, cfg, checkpoint, jobs):
    """Draw each ``(image, out)`` of ``jobs`` with one detector; yields the
    number of objects drawn to each."""
    import warnings

    import mmcv
    from mmdet.apis import inference_detector, init_detector

    from smt_mm.visualization import samples
    with warnings.catch_warnings(record=True):
        # "checkpoint is None, use COCO classes by default" (mmdet resets
        # the filters, so the warnings are recorded and dropped): the
        # classes are set from the checkpoint or the config below
        model = init_detector(cfg, None, device=args.device)
    meta = set_weights(model, checkpoint, args.checkpoint)
    source = dataset_meta(model, meta, cfg)
    heads = [
        cfg.model.get('roi_head', {}).get('bbox_head', {}),
        cfg.model.get('bbox_head', {})
    ]
    num_classes = next(
        (h.get('num_classes')
         for h in heads if isinstance(h, dict) and 'num_classes' in h), None)
    check_classes(model, source, num_classes)
    for path, out in jobs:
        result = inference_detector(model, path)
        image = mmcv.imread(path, channel_order='rgb')
        dets = samples.detections_of(result.pred_instances, args.score_thr)
        title = (f'{osp.basename(path)}: ' +
                 samples.plural(len(dets.labels), 'object') +
                 f' scoring >= {args.score_thr:g}')
        samples.render([samples.Panel(image, title, dets)],
                       model.dataset_meta.get('classes'),
                       model.dataset_meta.get('palette'),
                       path=out,
                       min_side=args.min_size)
        yield len(dets.labels)


def segment_and_draw(args, cfg, checkpoint, jobs):
    """Draw each ``(image, out)`` of ``jobs`` with one segmentor; yields
    the number of classes drawn to each."""
    import mmcv
    from mmseg.apis import inference_model, init_model

    from smt_mm.visualization import samples
    model = init_model(cfg, None, device=args.device)
    meta = set_weights(model, checkpoint, args.checkpoint)
    source = dataset_meta(model, meta, cfg)
    check_classes(model, source, cfg.model.decode_head.get('num_classes'))
    for path, out in jobs:
        result = inference_model(model, path)
        image = mmcv.imread(path, channel_order='rgb')
        label_map = samples.label_map_of(result.pred_sem_seg)
        samples.render([
            samples.Panel(image, osp.basename(path)),
            samples.Panel(image, 'prediction', label_map=label_map)
        ],
                       model.dataset_meta.get('classes'),
                       model.dataset_meta.get('palette'),
                       path=out,
                       min_side=args.min_size)
        yield len(np.unique(label_map))


def read_weights(args, cfg):
    """Read the checkpoint (safely) and refuse one of another task than
    the config's, before the model is built and logs anything."""
    from smt_mm.checkpoint import read_checkpoint
    from smt_mm.models.utils import check_checkpoint_parts
    checkpoint = read_checkpoint(args.checkpoint)
    check_checkpoint_parts(cfg.model, checkpoint, args.checkpoint)
    return checkpoint


def set_weights(model, checkpoint, filename):
    """Load the read ``checkpoint`` into ``model`` strictly (a wrong file
    stops with one line instead of a demo of random weights); take the
    class names of its training set when it has them. Returns the
    checkpoint's meta dict."""
    from smt_mm.models.utils import apply_checkpoint
    apply_checkpoint(model, checkpoint, filename)
    meta = (checkpoint.get('meta')
            if isinstance(checkpoint, dict) else None) or {}
    if meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    return meta


def classify_and_draw(args, cfg, checkpoint, jobs):
    """Draw each ``(image, out)`` of ``jobs`` with one classifier; yields
    the ``(class, score)`` pairs drawn to each."""
    import mmcv
    from mmpretrain.apis import ImageClassificationInferencer, get_model
    from mmpretrain.registry import VISUALIZERS

    model = get_model(cfg, device=args.device)  # weights below, strictly
    meta = set_weights(model, checkpoint, args.checkpoint)
    num_classes = cfg.model.head.num_classes
    classes = class_names(cfg, num_classes, meta)
    inferencer = ImageClassificationInferencer(
        model, pretrained=False, device=args.device)
    # mmpretrain's runtime config leaves the (instance) name out
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, name='smt_demo'))
    for path, out in jobs:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bar
            sample = inferencer(path, return_datasamples=True)[0]
        top = sample.pred_score.topk(min(args.topk, num_classes)).indices
        sample.set_pred_label(top)  # the visualizer draws every label given
        image = mmcv.imread(path, channel_order='rgb')
        short = min(image.shape[:2])
        visualizer.visualize_cls(
            image,
            sample,
            classes=classes,
            draw_gt=False,
            resize=args.min_size if 0 < short < args.min_size else None,
            out_file=out)
        yield [(classes[i] if classes else str(i), sample.pred_score[i].item())
               for i in top.tolist()]


def folder_images(folder):
    """The images of ``folder`` (mmdet's image extensions, any case), sorted
    by name; its subfolders are not searched."""
    from mmdet.utils.misc import IMG_EXTENSIONS
    found = sorted(
        name for name in os.listdir(folder)
        if name.lower().endswith(IMG_EXTENSIONS)
        and osp.isfile(osp.join(folder, name)))
    if not found:
        raise LaunchError(f'no images in folder {folder} (files ending in '
                          f'{", ".join(IMG_EXTENSIONS)})')
    return [osp.join(folder, name) for name in found]


def output_names(images):
    """``<stem>.png`` for each image; the whole name (``a.jpg.png``) where
    two images share a stem."""
    stems = [osp.splitext(osp.basename(p))[0] for p in images]
    return [(osp.basename(p) if stems.count(stem) > 1 else stem) + '.png'
            for p, stem in zip(images, stems)]


def plan(args):
    """``[(image, output)]`` for the command line, every input and output
    checked (one line for the first problem)."""
    if osp.isdir(args.image):
        if args.out is not None:
            raise LaunchError(f'{args.image} is a folder: --out names one '
                              'file; give --out-dir DIR for its drawings')
        if args.out_dir is None:
            raise LaunchError(f'{args.image} is a folder: give --out-dir DIR '
                              'for its drawings (one <image name>.png each)')
        images = folder_images(args.image)
    else:
        check_files(args.image)
        images = [args.image]
    if args.out_dir is not None:
        check_writable_dir(args.out_dir, '--out-dir')
        outs = [osp.join(args.out_dir, n) for n in output_names(images)]
    else:
        outs = [args.out or 'demo.png']
    for image, out in zip(images, outs):
        check_image(image)
        check_output_file(out, '--out-dir' if args.out_dir else '--out',
                          images, args.overwrite)
    return list(zip(images, outs))


def main(argv=None):
    args = parse_args(argv)
    if args.topk < 1:
        raise LaunchError(f'--topk must be at least 1, got {args.topk}')
    check_files(args.checkpoint)
    jobs = plan(args)
    cfg = load_config(args.config)
    task = task_of(cfg)
    if task not in DRAW:
        raise LaunchError(f'demo.py draws detection, segmentation and '
                          f'classification results; {args.config} is a '
                          f'{task} config')
    checkpoint = read_weights(args, cfg)
    if args.out_dir is not None:
        os.makedirs(args.out_dir, exist_ok=True)
    # the config's own registries, whatever scope an earlier caller left set
    with DefaultScope.overwrite_default_scope(task):
        report(args, cfg, task, checkpoint, jobs)


def report(args, cfg, task, checkpoint, jobs):
    """Draw the ``jobs``, one line each."""
    drawn = DRAW[task](args, cfg, checkpoint, jobs)
    for (_, out), what in zip(jobs, drawn):
        if task == 'mmdet':
            print(f'{what} objects (score >= {args.score_thr}) drawn to '
                  f'{out}')
        elif task == 'mmseg':
            print(f'{what} classes drawn to {out}')
        else:
            listed = '; '.join(f'{name} ({score:.2f})' for name, score in what)
            print(f'top-{len(what)} classes drawn to {out}: {listed}')


DRAW = {
    'mmdet': detect_and_draw,
    'mmseg': segment_and_draw,
    'mmpretrain': classify_and_draw
}

if __name__ == '__main__':
    run_cli(main)
