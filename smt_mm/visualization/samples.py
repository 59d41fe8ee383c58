# Copyright (c) SMT-MM contributors. All rights reserved.
"""Readable pictures of detection and segmentation samples: annotations
and predictions drawn side by side, each panel titled, small images
enlarged, labels that do not cover each other, class colours that differ
and a legend naming them.

Used by ``tools/demo.py``, ``tools/analysis/browse_dataset.py`` and, through
:mod:`smt_mm.visualization.visualizers`, by ``tools/test.py --show-dir``.
Drawn with matplotlib's object API on the Agg canvas (no window, no global
pyplot state).
"""
import colorsys
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

DPI = 100
# images whose short side is below this are enlarged (integer factor,
# nearest neighbour) so that labels and thin shapes can be read
MIN_SIDE = 512
LABEL_POINTS = 9
TITLE_POINTS = 11
MASK_ALPHA = 0.45
SEG_ALPHA = 0.75  # the image is drawn beside it: colours match the legend
# inches: panel title, gap between panels, figure title, margins
PANEL_TITLE, GAP, FIGURE_TITLE, EDGE = 0.32, 0.2, 0.36, 0.08
LEGEND_ROW = 0.26
# a palette whose colours are closer than this (RGB distance) is replaced
MIN_COLOUR_DISTANCE = 60
# WCAG 2 contrast ratio for graphics: a box in its class colour that stands
# out less from the image under its edge gets a black or white outline
MIN_CONTRAST = 3.0
BOX_WIDTH = 1.5  # points; an outline is this much wider on each side


class Detections(NamedTuple):
    """Boxes (N, 4) x1 y1 x2 y2 in pixels, labels (N, ), scores (N, ) or
    None (annotations), masks (N, H, W) bool or None."""
    boxes: np.ndarray
    labels: np.ndarray
    scores: Optional[np.ndarray] = None
    masks: Optional[np.ndarray] = None


class Panel(NamedTuple):
    """One titled picture: the image (H, W, 3) uint8 RGB with either
    detections, a label map (H, W) of class indices or nothing drawn."""
    image: np.ndarray
    title: str
    detections: Optional[Detections] = None
    label_map: Optional[np.ndarray] = None


def display_factor(shape: Sequence[int], min_side: int = MIN_SIDE) -> int:
    """Integer enlargement bringing the short side to ``min_side``."""
    short = min(shape[:2])
    if min_side <= 0 or short <= 0:
        return 1
    return max(1, -(-min_side // short))


def enlarge(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of the first two axes."""
    if factor == 1:
        return array
    return array.repeat(factor, axis=0).repeat(factor, axis=1)


def enlarge_panel(panel: Panel, factor: int) -> Panel:
    """The panel with image, boxes, masks and label map enlarged."""
    if factor == 1:
        return panel
    dets = panel.detections
    if dets is not None:
        masks = None if dets.masks is None else \
            dets.masks.repeat(factor, axis=1).repeat(factor, axis=2)
        dets = dets._replace(boxes=dets.boxes * factor, masks=masks)
    label_map = None if panel.label_map is None else \
        enlarge(panel.label_map, factor)
    return panel._replace(
        image=enlarge(panel.image, factor),
        detections=dets,
        label_map=label_map)


def _distinct(colours) -> bool:
    colours = np.asarray(colours, dtype=np.float64)
    if len(colours) < 2:
        return True
    diff = colours[:, None] - colours[None]
    dist = np.sqrt((diff**2).sum(-1)) + np.eye(len(colours)) * 1e9
    return dist.min() >= MIN_COLOUR_DISTANCE


def class_colours(num_classes: int, palette=None) -> np.ndarray:
    """(num_classes, 3) uint8 RGB colours: the dataset's palette when its
    colours are told apart easily, else evenly spaced saturated hues."""
    if palette is not None and not isinstance(palette, str) and \
            len(palette) >= num_classes and \
            _distinct(list(palette)[:num_classes]):
        return np.asarray(list(palette)[:num_classes], dtype=np.uint8)
    golden = 0.618033988749895
    colours = []
    for i in range(num_classes):
        hue = (i * golden) % 1.0
        value = 0.95 if i % 2 == 0 else 0.75
        colours.append(colorsys.hsv_to_rgb(hue, 0.9, value))
    return (np.asarray(colours) * 255).round().astype(np.uint8)


def class_name(classes, label: int) -> str:
    if classes is not None and 0 <= label < len(classes):
        return str(classes[label])
    return f'class {label}'


def _blend(image: np.ndarray, mask: np.ndarray, colour, alpha: float):
    out = image.astype(np.float32)
    out[mask] = out[mask] * (1 - alpha) + np.asarray(colour) * alpha
    return out.round().clip(0, 255).astype(np.uint8)


def _boundaries(label_map: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label."""
    edge = np.zeros(label_map.shape, bool)
    edge[:, :-1] |= label_map[:, :-1] != label_map[:, 1:]
    edge[:-1] |= label_map[:-1] != label_map[1:]
    return edge


def segmentation_overlay(image: np.ndarray,
                         label_map: np.ndarray,
                         colours: np.ndarray,
                         ignore_index: int = 255) -> np.ndarray:
    """The image with each class region tinted in its colour and the
    region borders drawn in white; ignored pixels stay as they are."""
    out = image.copy()
    for label in np.unique(label_map):
        if label == ignore_index or label >= len(colours):
            continue
        out = _blend(out, label_map == label, colours[label], SEG_ALPHA)
    out[_boundaries(label_map)] = 255
    return out


def detection_overlay(image: np.ndarray, dets: Detections,
                      colours: np.ndarray) -> np.ndarray:
    """The image with each instance mask tinted in its class colour."""
    out = image
    if dets.masks is not None:
        for mask, label in zip(dets.masks, dets.labels):
            out = _blend(out, mask.astype(bool), colours[label % len(colours)],
                         MASK_ALPHA)
    return out


def luminance(rgb) -> float:
    """WCAG 2 relative luminance (0 black .. 1 white) of 0-255 sRGB."""
    c = np.asarray(rgb, dtype=np.float64)[..., :3] / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055)**2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast(a, b) -> float:
    """WCAG 2 contrast ratio (1 .. 21) of two 0-255 sRGB colours."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def edge_background(image: np.ndarray, box) -> np.ndarray:
    """The median colour of the pixels a box's edge lies on (a band of
    3 px), clipped to the image."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = np.round(np.asarray(box, dtype=np.float64)).astype(int)
    x0, x1 = np.clip([x0, x1], 0, width - 1)
    y0, y1 = np.clip([y0, y1], 0, height - 1)
    band = np.zeros((height, width), bool)
    band[max(y0 - 1, 0):y1 + 2, max(x0 - 1, 0):x1 + 2] = True
    band[y0 + 2:y1 - 1, x0 + 2:x1 - 1] = False
    return np.median(image[band].reshape(-1, 3), axis=0)


def outline_colour(colour, background) -> Optional[Tuple[int, int, int]]:
    """Black or white (whichever stands out more from ``background``)
    when ``colour`` has a contrast below :data:`MIN_CONTRAST` against it,
    else None."""
    if contrast(colour, background) >= MIN_CONTRAST:
        return None
    black, white = (0, 0, 0), (255, 255, 255)
    return max((black, white), key=lambda c: contrast(c, background))


def text_colour(background) -> str:
    """``'black'`` or ``'white'``, whichever reads better on
    ``background``."""
    return 'black' if contrast((0, 0, 0), background) >= contrast(
        (255, 255, 255), background) else 'white'


def _overlaps(box, placed) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1
               for b in placed)


def _place_labels(ax, renderer, items, size: Tuple[int, int]) -> None:
    """Write each ``(x, y, text, colour)`` label at its box's top-left
    corner, moved down (then right) until it covers no earlier label;
    everything in data (pixel) coordinates."""
    height, width = size
    placed = []
    for x, y, text, colour in items:
        label = ax.text(
            x,
            y,
            text,
            fontsize=LABEL_POINTS,
            color=text_colour(colour),
            va='top',
            ha='left',
            bbox=dict(
                boxstyle='square,pad=0.15',
                facecolor=np.asarray(colour) / 255,
                edgecolor='none',
                alpha=0.9))
        extent = label.get_window_extent(renderer).transformed(
            ax.transData.inverted())
        w, h = abs(extent.x1 - extent.x0), abs(extent.y1 - extent.y0)
        x = min(max(x, 0), max(width - w, 0))
        y = min(max(y, 0), max(height - h, 0))
        for _ in range(40):
            box = (x, y, x + w, y + h)
            if not _overlaps(box, placed):
                break
            y += h + 1
            if y + h > height:  # no room below: next column
                y, x = 0, min(x + w + 2, max(width - w, 0))
        label.set_position((x, y))
        placed.append((x, y, x + w, y + h))


def _draw_detections(ax, renderer, panel: Panel, colours, classes) -> None:
    from matplotlib.patches import Rectangle
    dets = panel.detections
    shown = detection_overlay(panel.image, dets, colours)
    ax.imshow(shown)
    labels = []
    order = np.argsort(-dets.scores) if dets.scores is not None else \
        np.arange(len(dets.labels))
    for i in order:
        # box coordinates run along pixel edges; imshow centres pixels
        # on integers
        x0, y0, x1, y1 = dets.boxes[i] - 0.5
        colour = colours[dets.labels[i] % len(colours)]
        outline = outline_colour(colour,
                                 edge_background(shown, (x0, y0, x1, y1)))
        for edge, width in ([(np.asarray(outline), 3 * BOX_WIDTH)]
                            if outline else []) + [(colour, BOX_WIDTH)]:
            ax.add_patch(
                Rectangle((x0, y0),
                          x1 - x0,
                          y1 - y0,
                          fill=False,
                          edgecolor=np.asarray(edge) / 255,
                          linewidth=width))
        text = class_name(classes, int(dets.labels[i]))
        if dets.scores is not None:
            text += f' {dets.scores[i]:.2f}'
        labels.append((x0, y0, text, tuple(int(c) for c in colour)))
    _place_labels(ax, renderer, labels, panel.image.shape[:2])


def present_classes(panels: Sequence[Panel],
                    ignore_index: int = 255) -> List[int]:
    """Class indices drawn in any panel, sorted."""
    found = set()
    for panel in panels:
        if panel.detections is not None:
            found.update(int(v) for v in panel.detections.labels)
        if panel.label_map is not None:
            found.update(
                int(v) for v in np.unique(panel.label_map)
                if v != ignore_index)
    return sorted(found)


def draw_figure(panels: Sequence[Panel],
                classes: Optional[Sequence[str]] = None,
                palette=None,
                title: Optional[str] = None,
                min_side: int = MIN_SIDE,
                ignore_index: int = 255):
    """The matplotlib figure of :func:`render` (drawn, not saved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    factor = display_factor(panels[0].image.shape, min_side)
    panels = [enlarge_panel(p, factor) for p in panels]
    shown = present_classes(panels, ignore_index)
    num_classes = max([len(classes or [])] + [c + 1 for c in shown])
    colours = class_colours(num_classes, palette)

    heights = [p.image.shape[0] / DPI for p in panels]
    widths = [p.image.shape[1] / DPI for p in panels]
    fig_w = 2 * EDGE + sum(widths) + GAP * (len(panels) - 1)
    per_row = max(1, int(fig_w / 1.6))  # legend entries per row
    legend_rows = -(-len(shown) // per_row) if shown else 0
    bottom = EDGE + LEGEND_ROW * legend_rows
    top = EDGE + (FIGURE_TITLE if title else 0) + PANEL_TITLE
    fig_h = top + max(heights) + bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    left = EDGE
    for panel, w, h in zip(panels, widths, heights):
        ax = fig.add_axes(
            [left / fig_w, (fig_h - top - h) / fig_h, w / fig_w, h / fig_h])
        ax.set_axis_off()
        if panel.detections is not None:
            _draw_detections(ax, renderer, panel, colours, classes)
        elif panel.label_map is not None:
            ax.imshow(
                segmentation_overlay(panel.image, panel.label_map, colours,
                                     ignore_index))
        else:
            ax.imshow(panel.image)
        ax.set_xlim(-0.5, panel.image.shape[1] - 0.5)
        ax.set_ylim(panel.image.shape[0] - 0.5, -0.5)
        ax.set_title(panel.title, fontsize=TITLE_POINTS, pad=4)
        left += w + GAP
    if title:
        fig.suptitle(
            title,
            fontsize=TITLE_POINTS,
            y=1 - (EDGE + 0.04) / fig_h,
            va='top')
    if shown:
        handles = [
            Patch(
                facecolor=colours[c] / 255,
                edgecolor='black',
                label=class_name(classes, c)) for c in shown
        ]
        fig.legend(
            handles=handles,
            loc='lower center',
            ncol=min(per_row, len(shown)),
            fontsize=LABEL_POINTS,
            frameon=False,
            bbox_to_anchor=(0.5, 0),
            handlelength=1.2,
            columnspacing=1.0)
    canvas.draw()
    return fig


def render(panels: Sequence[Panel],
           classes: Optional[Sequence[str]] = None,
           palette=None,
           title: Optional[str] = None,
           path: Optional[str] = None,
           min_side: int = MIN_SIDE,
           ignore_index: int = 255) -> np.ndarray:
    """Draw ``panels`` side by side, enlarged to ``min_side``, with a
    legend of the classes they show; save to ``path`` if given. Returns
    the picture as (H, W, 3) uint8 RGB."""
    fig = draw_figure(panels, classes, palette, title, min_side, ignore_index)
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        import mmcv
        mmcv.imwrite(picture[..., ::-1], path)
    return picture


# ----------------------------------------------------------------------
# From OpenMMLab data samples
# ----------------------------------------------------------------------
def _numpy(value):
    if value is None:
        return None
    if hasattr(value, 'tensor'):  # mmdet's box types
        value = value.tensor
    if hasattr(value, 'to_ndarray'):  # mmdet's bitmap / polygon masks
        return value.to_ndarray()
    if hasattr(value, 'detach'):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def detections_of(instances, score_thr: Optional[float] = None) -> Detections:
    """:class:`Detections` from mmdet ``InstanceData`` (annotations, or
    predictions scoring at least ``score_thr``)."""
    boxes = _numpy(instances.get('bboxes'))
    boxes = np.zeros((0, 4)) if boxes is None else boxes.reshape(-1, 4)
    labels = _numpy(instances.get('labels')).astype(np.int64).reshape(-1)
    scores = _numpy(instances.get('scores'))
    masks = _numpy(instances.get('masks'))
    if masks is not None:
        masks = masks.astype(bool)
        if len(masks) != len(labels):
            masks = None
    if scores is not None and score_thr is not None:
        keep = scores >= score_thr
        boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
        masks = None if masks is None else masks[keep]
    return Detections(boxes, labels, scores, masks)


def label_map_of(pixel_data) -> np.ndarray:
    """(H, W) class indices from mmseg's ``PixelData``."""
    return _numpy(pixel_data.data)[0].astype(np.int64)


def plural(count: int, word: str) -> str:
    return f'{count} {word}' + ('' if count == 1 else 's')
