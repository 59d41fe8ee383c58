# Copyright (c) SMT-MM contributors. All rights reserved.
"""Run a model on one image and save the drawing: boxes, masks and labels
for detection configs, a class overlay for segmentation configs.

    python tools/demo.py IMAGE CONFIG CHECKPOINT --out out.png
"""
import argparse
import os.path as osp

import smt_mm  # noqa: F401
from smt_mm.errors import LaunchError
from smt_mm.utils.cli import run_cli
from smt_mm.utils.config import load_config, task_of


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', default='demo.png', help='output image')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='hide detections scoring below this')
    parser.add_argument(
        '--min-size',
        type=int,
        default=512,
        help='enlarge smaller images (and the predictions) '
        'to this short side before drawing, so labels stay '
        'readable; 0 keeps the original size')
    return parser.parse_args(argv)


def display_factor(image, min_size):
    """Integer enlargement bringing the short side to ``min_size``."""
    short = min(image.shape[:2])
    return max(1, -(-min_size // short)) if min_size > 0 else 1


def enlarge(image, factor):
    import mmcv
    h, w = image.shape[:2]
    return mmcv.imresize(
        image, (w * factor, h * factor), interpolation='nearest')


def enlarge_instances(instances, factor):
    """Scale predicted boxes and (nearest-neighbour) masks by ``factor``."""
    import torch.nn.functional as F
    instances.bboxes = instances.bboxes * factor
    if 'masks' in instances and len(instances.masks):
        masks = instances.masks[:, None].float()
        instances.masks = F.interpolate(
            masks, scale_factor=factor, mode='nearest')[:, 0].bool()
    return instances


def detect_and_draw(args, cfg):
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    model = init_detector(cfg, args.checkpoint, device=args.device)
    result = inference_detector(model, args.image)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    image = mmcv.imread(args.image, channel_order='rgb')
    factor = display_factor(image, args.min_size)
    if factor > 1:
        image = enlarge(image, factor)
        result.pred_instances = enlarge_instances(result.pred_instances,
                                                  factor)
    visualizer.add_datasample(
        'demo',
        image,
        data_sample=result,
        draw_gt=False,
        show=False,
        out_file=args.out,
        pred_score_thr=args.score_thr)
    return len(
        result.pred_instances[result.pred_instances.scores >= args.score_thr])


def segment_and_draw(args, cfg):
    import mmcv
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS

    model = init_model(cfg, args.checkpoint, device=args.device)
    result = inference_model(model, args.image)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    visualizer.alpha = 0.5  # keep the image visible under the classes
    image = mmcv.imread(args.image, channel_order='rgb')
    factor = display_factor(image, args.min_size)
    if factor > 1:
        image = enlarge(image, factor)
        from mmengine.structures import PixelData
        labels = result.pred_sem_seg.data
        result.pred_sem_seg = PixelData(
            data=labels.repeat_interleave(factor, dim=-2).repeat_interleave(
                factor, dim=-1))
    visualizer.add_datasample(
        'demo',
        image,
        data_sample=result,
        draw_gt=False,
        show=False,
        out_file=args.out,
        with_labels=True)
    return len(result.pred_sem_seg.data.unique())


def main(argv=None):
    args = parse_args(argv)
    for path in (args.image, args.checkpoint):
        if not osp.isfile(path):
            raise LaunchError(f'file not found: {path}')
    cfg = load_config(args.config)
    task = task_of(cfg)
    if task == 'mmdet':
        count = detect_and_draw(args, cfg)
        print(f'{count} objects (score >= {args.score_thr}) drawn to '
              f'{args.out}')
    elif task == 'mmseg':
        count = segment_and_draw(args, cfg)
        print(f'{count} classes drawn to {args.out}')
    else:
        raise LaunchError(f'demo.py draws detection and segmentation '
                          f'results; {args.config} is a {task} config')


if __name__ == '__main__':
    run_cli(main)
