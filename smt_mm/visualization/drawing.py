# Copyright (c) SMT-MM contributors. All rights reserved.
"""PNG figures of the visualisation tools: heat-maps blended over the input
image, one titled panel each, and ERF maps with their mass squares.

Figures are drawn with matplotlib's object API on the Agg canvas, so no
window or global pyplot state is involved. The layout is fixed in inches
(no tight bounding box: it renders every figure twice).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

PANEL_INCHES = 3.2
HEAT_CMAP = 'jet'
ERF_CMAP = 'viridis'
# ERF maps show log10(score / max) down to this many decades
ERF_DECADES = 4
SQUARE_COLOURS = ('white', 'orange', 'red')
# margins in inches: figure title, panel titles, gaps, colour bar column
TOP, TITLE, GAP, EDGE, BAR_COLUMN = 0.5, 0.3, 0.15, 0.1, 1.3


def _figure(rows: int, cols: int, aspect: float, inches=PANEL_INCHES):
    """A figure of ``rows`` x ``cols`` image panels (height / width
    ``aspect``) and an axis for the colour bar on the right."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    height = inches * aspect
    fig_w = EDGE + cols * inches + (cols - 1) * GAP + BAR_COLUMN
    fig_h = TOP + rows * (TITLE + height) + EDGE
    fig = Figure(figsize=(fig_w, fig_h))
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        rows,
        cols,
        squeeze=False,
        gridspec_kw=dict(
            left=EDGE / fig_w,
            right=1 - BAR_COLUMN / fig_w,
            bottom=EDGE / fig_h,
            top=1 - (TOP + TITLE) / fig_h,
            wspace=GAP / inches,
            hspace=TITLE / height)).ravel()
    for ax in axes:
        ax.axis('off')
    bar_h = min(rows * height, 4.0)
    bar_bottom = EDGE + (rows * (TITLE + height) - TITLE - bar_h) / 2
    bar = fig.add_axes([(fig_w - BAR_COLUMN + 0.2) / fig_w, bar_bottom / fig_h,
                        0.15 / fig_w, bar_h / fig_h])
    return fig, axes, bar


def to_image_grid(maps: torch.Tensor, stride: int,
                  image_hw: Tuple[int, int]) -> np.ndarray:
    """(P, h, w) token-grid maps -> (P, H, W) pixel maps over the image.

    Token (i, j) covers input pixels [i * stride, (i + 1) * stride) and
    likewise in x; the grid may end slightly short of or past the image
    (convolution rounding, padding), so the upsampled maps are cropped
    and, where short, extended with their edge values.
    """
    maps = F.interpolate(
        maps[None].float(),
        scale_factor=stride,
        mode='bilinear',
        align_corners=False)[0, :, :image_hw[0], :image_hw[1]]
    short = (0, image_hw[1] - maps.shape[2], 0, image_hw[0] - maps.shape[1])
    if any(short):
        maps = F.pad(maps[None], short, mode='replicate')[0]
    return maps.cpu().numpy()


def _mark(ax, query):
    if query is not None:
        for size, colour in ((140, 'black'), (60, 'white')):
            ax.scatter([query[0]], [query[1]],
                       s=size,
                       marker='x',
                       c=colour,
                       linewidths=3 if colour == 'black' else 1.5)


def _value_ticks(low: float, high: float) -> List[float]:
    return [low, (low + high) / 2, high] if high > low else [low]


def draw_heatmaps(image: np.ndarray,
                  heatmaps: np.ndarray,
                  titles: Sequence[str],
                  title: str,
                  path: str,
                  query: Optional[Tuple[float, float]] = None,
                  value_label: str = 'value',
                  panel_inches: float = PANEL_INCHES) -> str:
    """Save the image and one panel per heat-map blended over it, each
    with a colour bar of its own range in real values.

    Args:
        image (ndarray): (H, W, 3) uint8 RGB.
        heatmaps (ndarray): (P, H, W) values; each panel's colours span
            its own min..max, which its colour bar gives.
        titles (list[str]): One per heat-map.
        title (str): Figure title.
        path (str): PNG to write.
        query (tuple, optional): (x, y) pixel marked on every panel.
        value_label (str): What the values are (the colour bars' label).
        panel_inches (float): Width of a panel (100 pixels per inch).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    count = len(titles) + 1
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    aspect = image.shape[0] / image.shape[1]
    fig, axes = _panel_figure(rows, cols, aspect, panel_inches)
    axes[0].imshow(image)
    axes[0].set_title(f'input {image.shape[1]}x{image.shape[0]}', fontsize=10)
    _mark(axes[0], query)
    for ax, heat, name in zip(axes[1:], heatmaps, titles):
        low, high = float(heat.min()), float(heat.max())
        norm = Normalize(low, high if high > low else low + 1e-12)
        ax.imshow(image)
        ax.imshow(heat, cmap=HEAT_CMAP, alpha=0.5, norm=norm)
        ax.set_title(name, fontsize=10)
        _mark(ax, query)
        # an opaque bar: the blended one would look washed out
        bar = fig.colorbar(
            ScalarMappable(norm, HEAT_CMAP), cax=_bar_axes(fig, ax))
        bar.set_ticks(_value_ticks(low, high))
        bar.ax.tick_params(labelsize=7)
        bar.ax.yaxis.set_major_formatter('{x:.3g}')
    fig.suptitle(title, fontsize=11, y=1 - 0.15 / fig.get_figheight())
    fig.text(
        0.5, (EDGE + 0.25) / 2 / fig.get_figheight(),
        f'colour bars: {value_label}; each panel spans its own range',
        ha='center',
        va='center',
        fontsize=9)
    fig.savefig(path, dpi=100)
    return path


# per-panel colour bars: bar width, gap to the panel, room for tick labels
BAR_W, BAR_GAP, BAR_LABELS = 0.12, 0.06, 0.55


def _panel_figure(rows: int, cols: int, aspect: float, inches=PANEL_INCHES):
    """A figure of ``rows`` x ``cols`` image panels, each with room for a
    colour bar on its right and a line of text at the bottom."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    height = inches * aspect
    column = inches + BAR_GAP + BAR_W + BAR_LABELS
    bottom = EDGE + 0.25
    fig_w = 2 * EDGE + cols * column
    fig_h = TOP + rows * (TITLE + height) + bottom
    fig = Figure(figsize=(fig_w, fig_h))
    FigureCanvasAgg(fig)
    axes = []
    for i in range(rows * cols):
        row, col = divmod(i, cols)
        left = EDGE + col * column
        lower = fig_h - TOP - (row + 1) * (TITLE + height)
        ax = fig.add_axes(
            [left / fig_w, lower / fig_h, inches / fig_w, height / fig_h])
        ax.axis('off')
        axes.append(ax)
    return fig, axes


def _bar_axes(fig, ax):
    """Axes for a colour bar right of ``ax``, as tall as it."""
    box = ax.get_position()
    fig_w = fig.get_figwidth()
    return fig.add_axes(
        [box.x1 + BAR_GAP / fig_w, box.y0, BAR_W / fig_w, box.y1 - box.y0],
        label=f'colour bar of {ax.get_title()}')


def clipped_square(centre, side: int,
                   shape) -> Tuple[float, float, float, float]:
    """(x0, y0, x1, y1) edges of the ``side``-pixel square around
    ``centre`` (row, col), cut to the map (pixel edges at -0.5 and
    size - 0.5, as imshow draws them)."""
    height, width = shape
    half = side / 2
    x0 = max(centre[1] - half, -0.5)
    y0 = max(centre[0] - half, -0.5)
    x1 = min(centre[1] + half, width - 0.5)
    y1 = min(centre[0] + half, height - 0.5)
    return x0, y0, x1, y1


def _erf_panel(ax, score: np.ndarray, sides: Dict[float, int], centre,
               name: str):
    from matplotlib.patches import Rectangle
    log = np.log10(np.maximum(score / score.max(), 10.0**-ERF_DECADES))
    shown = ax.imshow(log, cmap=ERF_CMAP, vmin=-ERF_DECADES, vmax=0)
    for (fraction, side), colour in zip(sorted(sides.items()), SQUARE_COLOURS):
        x0, y0, x1, y1 = clipped_square(centre, side, score.shape)
        clipped = (x1 - x0, y1 - y0) != (side, side)
        # inside the image: a line drawn on the edge would be half outside
        inset = 0.75
        ax.add_patch(
            Rectangle((x0 + inset, y0 + inset),
                      x1 - x0 - 2 * inset,
                      y1 - y0 - 2 * inset,
                      fill=False,
                      edgecolor=colour,
                      linewidth=1.5,
                      linestyle='--' if clipped else '-',
                      label=f'{fraction:.0%}: {side} px' +
                      (' (cut by the image)' if clipped else '')))
    ax.set_xlim(-0.5, score.shape[1] - 0.5)
    ax.set_ylim(score.shape[0] - 0.5, -0.5)
    ax.legend(loc='lower right', fontsize=8, framealpha=0.7)
    ax.set_title(name, fontsize=10)
    return shown


def draw_erf(scores: List[np.ndarray], sides: List[Dict[float, int]],
             centres: List[Tuple[int, int]], names: List[str], title: str,
             path: str) -> str:
    """Save ERF panels side by side (log10 of each map over its maximum)
    with the squares holding 20%/50%/99% of the mass."""
    # a lone map gets a bigger panel: its small squares must stay visible
    inches = PANEL_INCHES * (1.6 if len(scores) == 1 else 1)
    fig, axes, bar_ax = _figure(1, len(scores), 1.0, inches=inches)
    for ax, score, side, centre, name in zip(axes, scores, sides, centres,
                                             names):
        shown = _erf_panel(ax, score, side, centre, name)
    fig.colorbar(shown, cax=bar_ax).set_label('log10(contribution / max)')
    fig.suptitle(title, fontsize=11, y=1 - 0.15 / fig.get_figheight())
    fig.savefig(path, dpi=100)
    return path
