# Copyright (c) SMT-MM contributors. All rights reserved.
"""smt_mm.visualization's readable visualizers: detection and segmentation
pictures people can read (size, labels, legend)."""
import numpy as np
import torch
from PIL import Image

CLASSES = ('square', 'disc', 'triangle')
PALETTE = [(220, 20, 60), (0, 128, 255), (60, 180, 75)]


def det_sample():
    """A 128 x 128 detection sample: three annotated shapes and five
    predictions, three of them on the first shape (labels that would sit
    on each other)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    boxes = torch.tensor([[10., 10, 60, 60], [70, 20, 120, 90],
                          [30, 80, 90, 125]])
    masks = torch.zeros(3, 128, 128, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
        masks[i, y0:y1, x0:x1] = True
    sample = DetDataSample(metainfo=dict(img_path='/data/val/000007.png'))
    sample.gt_instances = InstanceData(
        bboxes=boxes, labels=torch.tensor([0, 1, 2]), masks=masks)
    sample.pred_instances = InstanceData(
        bboxes=torch.cat([boxes, boxes[:1] + 2, boxes[:1] - 1]),
        labels=torch.tensor([0, 1, 2, 1, 2]),
        scores=torch.tensor([.9, .8, .7, .6, .2]),
        masks=torch.cat([masks, masks[:1], masks[:1]]))
    image = np.random.RandomState(0).randint(0, 255, (128, 128, 3))
    return image.astype(np.uint8), sample


def figure_texts(fig):
    titles = [ax.get_title() for ax in fig.axes]
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    return titles, legend


def label_boxes(fig):
    """Pixel extents of the labels drawn over the panels."""
    renderer = fig.canvas.get_renderer()
    return [
        text.get_window_extent(renderer) for ax in fig.axes
        for text in ax.texts
    ]


def test_detection_picture_is_readable(tmp_path, monkeypatch):
    from smt_mm.visualization import samples
    from smt_mm.visualization.visualizers import ReadableDetVisualizer
    image, sample = det_sample()
    drawn = {}
    real = samples.draw_figure
    monkeypatch.setattr(samples, 'draw_figure',
                        lambda *a, **k: drawn.setdefault('fig', real(*a, **k)))
    visualizer = ReadableDetVisualizer(name='test_readable_det')
    visualizer.dataset_meta = dict(classes=CLASSES, palette=PALETTE)
    out = tmp_path / 'det.png'
    visualizer.add_datasample(
        'test_img', image, sample, out_file=str(out), pred_score_thr=0.3)
    with Image.open(out) as picture:
        width, height = picture.size
    # two 512-px panels (128 px enlarged 4x) side by side, titles, legend
    assert height >= 512 + 50 and width >= 2 * 512, (width, height)
    titles, legend = figure_texts(drawn['fig'])
    assert titles == [
        'annotations: 3 objects', 'prediction: 4 objects scoring >= 0.3'
    ]
    assert drawn['fig']._suptitle.get_text() == '000007.png'
    assert legend == list(CLASSES)
    labels = [t.get_text() for ax in drawn['fig'].axes for t in ax.texts]
    assert 'square 0.90' in labels and 'disc 0.60' in labels
    assert not any('0.20' in label for label in labels)  # below the bar
    boxes = label_boxes(drawn['fig'])
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and \
                min(a.y1, b.y1) - max(a.y0, b.y0) > 1
            assert not overlap, (a, b)


def test_segmentation_picture_has_distinct_colours_and_legend(monkeypatch):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from smt_mm.visualization import samples
    from smt_mm.visualization.visualizers import ReadableSegVisualizer
    labels = np.zeros((64, 96), np.int64)
    labels[10:40, 10:40] = 1
    labels[45:, 50:] = 3
    labels[:8, 80:] = 255  # ignored
    sample = SegDataSample(metainfo=dict(img_path='/data/ade_3.jpg'))
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels)[None])
    sample.pred_sem_seg = PixelData(
        data=torch.from_numpy(np.where(labels == 255, 0, labels))[None])
    drawn = {}
    real = samples.draw_figure
    monkeypatch.setattr(samples, 'draw_figure',
                        lambda *a, **k: drawn.setdefault('fig', real(*a, **k)))
    visualizer = ReadableSegVisualizer(name='test_readable_seg')
    visualizer.dataset_meta = dict(
        classes=('ground', 'disc', 'stripes', 'checker'),
        palette=[(120, 120, 80), (125, 120, 82), (0, 128, 255),
                 (250, 170, 30)])
    image = np.full((64, 96, 3), 128, np.uint8)
    visualizer.add_datasample('test_ade_3.jpg', image, sample)
    picture = visualizer.get_image()
    # image, annotation and prediction, each enlarged to 512 px high
    assert picture.shape[0] >= 512 + 50 and picture.shape[1] >= 3 * 768
    titles, legend = figure_texts(drawn['fig'])
    assert titles == ['image', 'annotation', 'prediction']
    assert legend == ['ground', 'disc', 'checker']
    # the palette's first two colours are nearly equal: replaced
    colours = samples.class_colours(4, visualizer.dataset_meta['palette'])
    assert samples._distinct(colours)
    assert not samples._distinct(visualizer.dataset_meta['palette'])


def test_detection_test_draws_every_interval_th_batch(monkeypatch):
    """tools/test.py --interval N: mmdet's own hook would draw every test
    image; the configured one draws every N-th batch."""
    from helpers import QUICKSTART
    from mmdet.engine.hooks import DetVisualizationHook
    from mmdet.registry import HOOKS
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer

    from smt_mm.launch.config import load_config
    from smt_mm.visualization.visualizers import enable_visualization
    Visualizer.get_instance('interval_test')  # the hook draws with it
    cfg = load_config(QUICKSTART)
    enable_visualization(cfg, 'mmdet', None, interval=3)
    drawn = []
    monkeypatch.setattr(DetVisualizationHook, 'after_test_iter',
                        lambda self, runner, i, batch, out: drawn.append(i))
    with DefaultScope.overwrite_default_scope('mmdet'):
        hook = HOOKS.build(cfg.default_hooks.visualization)
    for batch_idx in range(7):
        hook.after_test_iter(None, batch_idx, None, [])
    assert drawn == [2, 5]
