# Copyright (c) SMT-MM contributors. All rights reserved.
"""Draw training samples as the model sees them (after the train pipeline),
with their annotations, to PNG files.

    python tools/analysis/browse_dataset.py CONFIG --output-dir DIR
        [--show-number N]
        [--split train|val|test] [--cfg-options k=v ...]

Uses the task's own visualizer from the config (mmdet boxes and masks,
mmseg label maps, mmpretrain class labels).
"""
import argparse
import os
import os.path as osp

import smt_mm  # noqa: F401  (registers SMT, smt_mm:: configs)
from smt_mm.errors import LaunchError
from smt_mm.utils.cli import add_cfg_options, run_cli
from smt_mm.utils.config import load_config, task_of


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    # OpenMMLab's names, ours of earlier releases as aliases
    parser.add_argument(
        '--output-dir',
        '--out-dir',
        dest='out_dir',
        required=True,
        help='folder for the PNG files')
    parser.add_argument(
        '--show-number',
        '--num',
        dest='num',
        type=int,
        default=10,
        help='how many samples (from the start)')
    parser.add_argument(
        '--split', default='train', choices=('train', 'val', 'test'))
    add_cfg_options(parser)
    return parser.parse_args(argv)


def build_visualizer(cfg, dataset):
    from mmengine.registry import VISUALIZERS
    vis_cfg = dict(cfg.visualizer)
    # No log backends (nothing is logged) and a name of its own.
    vis_cfg.update(vis_backends=None, save_dir=None, name='browse_dataset')
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    return visualizer


def _plain_det_targets(sample) -> None:
    """The detection visualizer draws tensors and boolean arrays; the
    pipeline packs box objects and bitmap / polygon masks."""
    from mmdet.structures.bbox import BaseBoxes
    instances = sample.gt_instances
    boxes = instances.get('bboxes')
    if isinstance(boxes, BaseBoxes):
        instances.bboxes = boxes.tensor
    masks = instances.get('masks')
    if masks is not None and hasattr(masks, 'to_ndarray'):
        instances.masks = masks.to_ndarray().astype(bool)


def draw(task, visualizer, image, sample, out_file):
    """Write ``image`` (RGB HWC uint8) with ``sample``'s annotations."""
    if task == 'mmdet':
        _plain_det_targets(sample)
    if task == 'mmpretrain':
        visualizer.visualize_cls(
            image, sample, draw_pred=False, out_file=out_file)
    else:
        visualizer.add_datasample(
            osp.basename(out_file),
            image,
            sample,
            draw_gt=True,
            draw_pred=False,
            out_file=out_file)


def main(argv=None):
    from mmengine.registry import DATASETS, init_default_scope
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    task = task_of(cfg)
    init_default_scope(task)
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader or not loader.get('dataset'):
        raise LaunchError(f'the config has no {args.split}_dataloader')
    try:
        dataset = DATASETS.build(loader.dataset)
    except FileNotFoundError as err:
        raise LaunchError(f'{err} (check the data with '
                          'tools/misc/check_dataset.py)')
    visualizer = build_visualizer(cfg, dataset)
    os.makedirs(args.out_dir, exist_ok=True)
    count = min(args.num, len(dataset))
    for index in range(count):
        item = dataset[index]
        sample = item['data_samples']
        # Packed inputs are CHW in the loader's BGR order.
        image = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1].copy()
        stem = osp.splitext(osp.basename(sample.get('img_path', '')))[0]
        out_file = osp.join(args.out_dir, f'{index:04d}_{stem}.png')
        draw(task, visualizer, image, sample, out_file)
    print(f'wrote {count} samples of the {args.split} set to '
          f'{args.out_dir}')


if __name__ == '__main__':
    run_cli(main)
