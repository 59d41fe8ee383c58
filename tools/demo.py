# Copyright (c) SMT-MM contributors. All rights reserved.
"""Run a model on one image and save the drawing: boxes, masks and labels
for detection configs, a class overlay for segmentation configs, the top-5
classes for classification configs.

    python tools/demo.py IMAGE CONFIG CHECKPOINT --out out.png [--overwrite]

The drawing never replaces the input image, nor an existing file unless
``--overwrite`` is given. For classification, CHECKPOINT may also be an
official SMT release file (converted on the fly and loaded strictly); class
names come from the checkpoint, else the config's dataset, else indices.
"""
import argparse
import contextlib
import io
import os.path as osp

import numpy as np
from mmengine.registry import DefaultScope

import smt_mm  # noqa: F401
from smt_mm.apis import class_names, config_dataset_meta
from smt_mm.errors import LaunchError
from smt_mm.files import check_image, check_output_file
from smt_mm.launch.cli import run_cli
from smt_mm.launch.config import load_config, task_of
from smt_mm.visualization.inputs import check_files


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', default='demo.png', help='output image')
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


def detect_and_draw(args, cfg):
    import warnings

    import mmcv
    from mmdet.apis import inference_detector, init_detector

    from smt_mm.visualization import samples
    with warnings.catch_warnings(record=True):
        # "checkpoint is None, use COCO classes by default" (mmdet resets
        # the filters, so the warnings are recorded and dropped): the
        # classes are set from the checkpoint or the config below
        model = init_detector(cfg, None, device=args.device)
    meta = set_weights(model, args.checkpoint)
    source = dataset_meta(model, meta, cfg)
    heads = [
        cfg.model.get('roi_head', {}).get('bbox_head', {}),
        cfg.model.get('bbox_head', {})
    ]
    num_classes = next(
        (h.get('num_classes')
         for h in heads if isinstance(h, dict) and 'num_classes' in h), None)
    check_classes(model, source, num_classes)
    result = inference_detector(model, args.image)
    image = mmcv.imread(args.image, channel_order='rgb')
    dets = samples.detections_of(result.pred_instances, args.score_thr)
    title = (f'{osp.basename(args.image)}: ' +
             samples.plural(len(dets.labels), 'object') +
             f' scoring >= {args.score_thr:g}')
    samples.render([samples.Panel(image, title, dets)],
                   model.dataset_meta.get('classes'),
                   model.dataset_meta.get('palette'),
                   path=args.out,
                   min_side=args.min_size)
    return len(dets.labels)


def segment_and_draw(args, cfg):
    import mmcv
    from mmseg.apis import inference_model, init_model

    from smt_mm.visualization import samples
    model = init_model(cfg, None, device=args.device)
    meta = set_weights(model, args.checkpoint)
    source = dataset_meta(model, meta, cfg)
    check_classes(model, source, cfg.model.decode_head.get('num_classes'))
    result = inference_model(model, args.image)
    image = mmcv.imread(args.image, channel_order='rgb')
    label_map = samples.label_map_of(result.pred_sem_seg)
    samples.render([
        samples.Panel(image, osp.basename(args.image)),
        samples.Panel(image, 'prediction', label_map=label_map)
    ],
                   model.dataset_meta.get('classes'),
                   model.dataset_meta.get('palette'),
                   path=args.out,
                   min_side=args.min_size)
    return len(np.unique(label_map))


def set_weights(model, filename):
    """Load ``filename`` into ``model`` (read safely, loaded strictly: a
    wrong file stops with one line instead of a demo of random weights);
    take the class names of its training set when it has them. Returns
    the checkpoint's meta dict."""
    from smt_mm.models.utils import load_model_weights
    checkpoint = load_model_weights(model, filename)
    meta = checkpoint.get('meta') or {}
    if meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    return meta


def classify_and_draw(args, cfg):
    import mmcv
    from mmpretrain.apis import ImageClassificationInferencer, get_model
    from mmpretrain.registry import VISUALIZERS

    model = get_model(cfg, device=args.device)  # weights below, strictly
    meta = set_weights(model, args.checkpoint)
    num_classes = cfg.model.head.num_classes
    classes = class_names(cfg, num_classes, meta)
    inferencer = ImageClassificationInferencer(
        model, pretrained=False, device=args.device)
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bar
        sample = inferencer(args.image, return_datasamples=True)[0]
    top = sample.pred_score.topk(min(args.topk, num_classes)).indices
    sample.set_pred_label(top)  # the visualizer draws every label given
    # mmpretrain's runtime config leaves the (instance) name out
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, name='smt_demo'))
    image = mmcv.imread(args.image, channel_order='rgb')
    short = min(image.shape[:2])
    visualizer.visualize_cls(
        image,
        sample,
        classes=classes,
        draw_gt=False,
        resize=args.min_size if 0 < short < args.min_size else None,
        out_file=args.out)
    return [(classes[i] if classes else str(i), sample.pred_score[i].item())
            for i in top.tolist()]


def main(argv=None):
    args = parse_args(argv)
    check_files(args.image, args.checkpoint)
    if args.topk < 1:
        raise LaunchError(f'--topk must be at least 1, got {args.topk}')
    check_image(args.image)
    check_output_file(args.out, '--out', [args.image], args.overwrite)
    cfg = load_config(args.config)
    task = task_of(cfg)
    # the config's own registries, whatever scope an earlier caller left set
    with DefaultScope.overwrite_default_scope(task):
        report(args, cfg, task)


def report(args, cfg, task):
    if task == 'mmdet':
        count = detect_and_draw(args, cfg)
        print(f'{count} objects (score >= {args.score_thr}) drawn to '
              f'{args.out}')
    elif task == 'mmseg':
        count = segment_and_draw(args, cfg)
        print(f'{count} classes drawn to {args.out}')
    elif task == 'mmpretrain':
        top = classify_and_draw(args, cfg)
        listed = '; '.join(f'{name} ({score:.2f})' for name, score in top)
        print(f'top-{len(top)} classes drawn to {args.out}: {listed}')
    else:
        raise LaunchError(f'demo.py draws detection, segmentation and '
                          f'classification results; {args.config} is a '
                          f'{task} config')


if __name__ == '__main__':
    run_cli(main)
