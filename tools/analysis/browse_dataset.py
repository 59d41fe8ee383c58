# Copyright (c) SMT-MM contributors. All rights reserved.
"""Draw training samples as the model sees them (after the train pipeline),
with their annotations, to PNG files.

    python tools/analysis/browse_dataset.py CONFIG --output-dir DIR
        [--show-number N] [--min-side PX]
        [--split train|val|test] [--cfg-options k=v ...]

Detection samples are drawn with their boxes, masks and class labels,
segmentation samples as the image beside its annotation (distinct colours,
a legend naming the classes), classification samples with mmpretrain's
visualizer; samples smaller than --min-side (default 512) are enlarged.
"""
import argparse
import os
import os.path as osp

import smt_mm  # noqa: F401  (registers SMT, smt_mm:: configs)
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import add_cfg_options, run_cli
from smt_mm.launch.config import load_config, task_of


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
    parser.add_argument(
        '--min-side',
        type=int,
        default=512,
        help='enlarge smaller samples to this short side (0: as they are)')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def build_visualizer(cfg, dataset):
    """mmpretrain's visualizer of the config, for classification
    samples."""
    from mmengine.registry import VISUALIZERS
    vis_cfg = dict(cfg.visualizer)
    # No log backends (nothing is logged) and a name of its own.
    vis_cfg.update(vis_backends=None, save_dir=None, name='browse_dataset')
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    return visualizer


def sample_panels(task, image, sample):
    """The titled panels of one detection or segmentation sample: its
    annotations (over the image)."""
    from smt_mm.visualization import samples
    shape = 'x'.join(map(str, image.shape[1::-1]))
    if task == 'mmdet':
        dets = samples.detections_of(sample.gt_instances)
        return [
            samples.Panel(
                image, f'{shape} after the pipeline: ' +
                samples.plural(len(dets.labels), 'object'), dets)
        ]
    panels = [samples.Panel(image, f'{shape} after the pipeline')]
    if 'gt_sem_seg' in sample:
        panels.append(
            samples.Panel(
                image,
                'annotation',
                label_map=samples.label_map_of(sample.gt_sem_seg)))
    return panels


def draw(task,
         visualizer,
         image,
         sample,
         out_file,
         metainfo=None,
         min_side=512):
    """Write ``image`` (RGB HWC uint8) with ``sample``'s annotations,
    enlarged to ``min_side`` when smaller."""
    if task == 'mmpretrain':
        short = min(image.shape[:2])
        visualizer.visualize_cls(
            image,
            sample,
            draw_pred=False,
            resize=min_side if 0 < short < min_side else None,
            out_file=out_file)
        return
    from smt_mm.visualization import samples
    metainfo = metainfo or {}
    samples.render(
        sample_panels(task, image, sample),
        metainfo.get('classes'),
        metainfo.get('palette'),
        title=osp.basename(sample.get('img_path', '')) or None,
        path=out_file,
        min_side=min_side)


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
    visualizer = build_visualizer(cfg, dataset) \
        if task == 'mmpretrain' else None
    os.makedirs(args.out_dir, exist_ok=True)
    count = min(args.num, len(dataset))
    for index in range(count):
        item = dataset[index]
        sample = item['data_samples']
        # Packed inputs are CHW in the loader's BGR order.
        image = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1].copy()
        stem = osp.splitext(osp.basename(sample.get('img_path', '')))[0]
        out_file = osp.join(args.out_dir, f'{index:04d}_{stem}.png')
        draw(task, visualizer, image, sample, out_file, dataset.metainfo,
             args.min_side)
    print(f'wrote {count} samples of the {args.split} set to '
          f'{args.out_dir}')


if __name__ == '__main__':
    run_cli(main)
