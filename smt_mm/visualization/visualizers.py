# Copyright (c) SMT-MM contributors. All rights reserved.
"""mmdet's and mmseg's local visualizers drawing readable pictures
(:mod:`smt_mm.visualization.samples`): annotations and predictions in
titled panels side by side, small images enlarged, labels kept apart, a
legend of the classes shown.

``tools/test.py --show-dir`` selects them (``ReadableDetVisualizer``,
``ReadableSegVisualizer``) through :func:`enable_visualization`; importing
this module registers them in the mmdet and mmseg visualizer registries.
Everything else (backends, saving through the visualization hooks) is the
parent classes'.
"""
from typing import Optional

import numpy as np
from mmdet.engine.hooks import DetVisualizationHook
from mmdet.registry import HOOKS as DET_HOOKS
from mmdet.registry import VISUALIZERS as DET_VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmseg.registry import VISUALIZERS as SEG_VISUALIZERS
from mmseg.visualization import SegLocalVisualizer

from smt_mm.errors import LaunchError
from smt_mm.launch.config import check_writable_dir
from . import samples

READABLE = {
    'mmdet': 'ReadableDetVisualizer',
    'mmseg': 'ReadableSegVisualizer',
}


def _finish(visualizer, name, picture, show, wait_time, out_file, step):
    """Keep, show and save ``picture`` as the parent classes do."""
    visualizer.set_image(picture)
    if show:
        visualizer.show(picture, win_name=name, wait_time=wait_time)
    if out_file is not None:
        import mmcv
        mmcv.imwrite(picture[..., ::-1], out_file)
    else:
        visualizer.add_image(name, picture, step)


def _title(name: str, data_sample) -> str:
    """The image's file name (mmdet's hook names every image
    ``test_img``)."""
    import os.path as osp
    path = data_sample.get('img_path') if data_sample is not None else None
    return osp.basename(path) if path else name


@DET_VISUALIZERS.register_module()
class ReadableDetVisualizer(DetLocalVisualizer):
    """:class:`DetLocalVisualizer` with readable pictures.

    Args:
        min_side (int): Images whose short side is smaller are enlarged
            (an integer factor) before drawing. Default: 512.
        **kwargs: The arguments of :class:`DetLocalVisualizer`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 min_side: int = samples.MIN_SIDE,
                 **kwargs):
        # mmengine's ManagerMixin needs ``name`` in the signature
        super().__init__(name=name, **kwargs)
        self.min_side = min_side

    def add_datasample(self,
                       name,
                       image,
                       data_sample=None,
                       draw_gt=True,
                       draw_pred=True,
                       show=False,
                       wait_time=0,
                       out_file=None,
                       pred_score_thr=0.3,
                       step=0):
        image = np.clip(image, 0, 255).astype(np.uint8)
        meta = self.dataset_meta or {}
        panels = []
        if data_sample is not None:
            if draw_gt and 'gt_instances' in data_sample:
                dets = samples.detections_of(data_sample.gt_instances)
                panels.append(
                    samples.Panel(
                        image, 'annotations: ' +
                        samples.plural(len(dets.labels), 'object'), dets))
            if draw_pred and 'pred_instances' in data_sample:
                dets = samples.detections_of(data_sample.pred_instances,
                                             pred_score_thr)
                panels.append(
                    samples.Panel(
                        image, 'prediction: ' +
                        samples.plural(len(dets.labels), 'object') +
                        f' scoring >= {pred_score_thr:g}', dets))
        if not panels:
            panels.append(samples.Panel(image, 'image'))
        picture = samples.render(
            panels,
            meta.get('classes'),
            meta.get('palette'),
            title=_title(name, data_sample),
            min_side=self.min_side)
        _finish(self, name, picture, show, wait_time, out_file, step)


@SEG_VISUALIZERS.register_module()
class ReadableSegVisualizer(SegLocalVisualizer):
    """:class:`SegLocalVisualizer` with readable pictures: the image, the
    annotation and the prediction side by side, each class region tinted
    in a distinct colour with white borders, and a legend.

    Args:
        min_side (int): Images whose short side is smaller are enlarged
            (an integer factor) before drawing. Default: 512.
        **kwargs: The arguments of :class:`SegLocalVisualizer`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 min_side: int = samples.MIN_SIDE,
                 **kwargs):
        # mmengine's ManagerMixin needs ``name`` in the signature
        super().__init__(name=name, **kwargs)
        self.min_side = min_side

    def add_datasample(self,
                       name,
                       image,
                       data_sample=None,
                       draw_gt=True,
                       draw_pred=True,
                       show=False,
                       wait_time=0,
                       out_file=None,
                       step=0,
                       with_labels=True):
        image = np.clip(image, 0, 255).astype(np.uint8)
        meta = self.dataset_meta or {}
        panels = [samples.Panel(image, 'image')]
        if data_sample is not None:
            if draw_gt and 'gt_sem_seg' in data_sample:
                panels.append(
                    samples.Panel(
                        image,
                        'annotation',
                        label_map=samples.label_map_of(
                            data_sample.gt_sem_seg)))
            if draw_pred and 'pred_sem_seg' in data_sample:
                panels.append(
                    samples.Panel(
                        image,
                        'prediction',
                        label_map=samples.label_map_of(
                            data_sample.pred_sem_seg)))
        picture = samples.render(
            panels,
            meta.get('classes'),
            meta.get('palette'),
            title=_title(name, data_sample),
            min_side=self.min_side)
        _finish(self, name, picture, show, wait_time, out_file, step)


def enable_visualization(cfg,
                         task: str,
                         show_dir: Optional[str],
                         show: bool = False,
                         wait_time: float = 2,
                         interval: int = 1) -> None:
    """Draw every ``interval``-th batch of test predictions, saving them
    under ``show_dir``."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise LaunchError('--show/--show-dir need a visualization hook in '
                          'default_hooks')
    if task == 'mmpretrain':
        if show_dir is not None:
            check_writable_dir(show_dir, '--show-dir')
        hook.update(
            enable=True,
            show=show,
            wait_time=wait_time,
            out_dir=show_dir,
            interval=interval)
        return
    hook.update(draw=True, show=show, wait_time=wait_time, interval=interval)
    if task == 'mmdet':
        hook.type = 'IntervalDetVisualizationHook'
    # readable pictures: titled panels, small images enlarged, a legend
    cfg.visualizer.type = READABLE[task]
    if show_dir is None:
        return
    check_writable_dir(show_dir, '--show-dir')
    if task == 'mmdet':
        hook.test_out_dir = show_dir
    else:
        cfg.visualizer.save_dir = show_dir


@DET_HOOKS.register_module()
class IntervalDetVisualizationHook(DetVisualizationHook):
    """mmdet's visualization hook drawing every ``interval``-th test batch,
    as mmseg's and mmpretrain's hooks do (mmdet's draws every test image
    whatever its interval)."""

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs) -> None:
        if self.every_n_inner_iters(batch_idx, self.interval):
            super().after_test_iter(runner, batch_idx, data_batch, outputs)
