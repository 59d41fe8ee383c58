# Copyright (c) SMT-MM contributors. All rights reserved.
"""Predictions stay visible whatever the image under them: a box whose
class colour has a WCAG contrast below 3:1 against the image along its
edge gets a black or white outline under it, and label text is black or
white, whichever reads on the class colour (>= 4.5:1)."""
import numpy as np
import pytest

from smt_mm.visualization import samples


def test_contrast_ratio_is_wcag():
    assert samples.contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert samples.contrast((90, 90, 90), (90, 90, 90)) == 1
    # WCAG's example pair: #777777 on white is 4.48:1
    assert samples.contrast((119, 119, 119), (255, 255, 255)) == pytest.approx(
        4.48, abs=0.01)


def one_box_figure(background, colour):
    """The figure of one box of class colour ``colour`` on an image filled
    with ``background``."""
    image = np.zeros((96, 128, 3), np.uint8)
    image[:] = background
    dets = samples.Detections(
        boxes=np.array([[20., 20., 70., 60.]]),
        labels=np.array([0]),
        scores=np.array([0.9]))
    return samples.draw_figure([samples.Panel(image, 'p', dets)], ['thing'],
                               palette=[colour])


def box_strokes(background, colour):
    """The rectangles drawn for the box of :func:`one_box_figure`, bottom
    first: [(edge RGB 0-255, width)]."""
    from matplotlib.patches import Rectangle
    fig = one_box_figure(background, colour)
    return [(tuple(np.round(np.asarray(p.get_edgecolor()[:3]) * 255)),
             p.get_linewidth()) for ax in fig.axes for p in ax.patches
            if isinstance(p, Rectangle)]


@pytest.mark.parametrize(
    'background, colour',
    [
        ((250, 240, 30), (250, 240, 30)),  # yellow box on yellow
        ((20, 20, 20), (0, 0, 128)),  # navy on near-black
        ((200, 200, 200), (255, 255, 0))
    ])  # yellow on light grey
def test_low_contrast_box_gets_an_outline(background, colour):
    strokes = box_strokes(background, colour)
    assert len(strokes) == 2, strokes
    (outline, wide), (edge, narrow) = strokes
    assert edge == colour and wide > narrow
    assert samples.contrast(outline, background) >= samples.MIN_CONTRAST


def test_box_that_stands_out_keeps_its_colour_alone():
    strokes = box_strokes((20, 20, 20), (255, 255, 0))
    assert strokes == [((255, 255, 0), samples.BOX_WIDTH)]


def test_every_class_colour_box_is_visible_on_any_grey():
    colours = samples.class_colours(12)
    for colour in colours:
        for grey in range(0, 256, 15):
            background = (grey, grey, grey)
            outline = samples.outline_colour(colour, background)
            shown = colour if outline is None else outline
            assert samples.contrast(shown, background) >= 3, (colour, grey)


@pytest.mark.parametrize('colour', [(0, 255, 0), (255, 0, 0), (0, 0, 255),
                                    (255, 255, 0), (128, 0, 128)])
def test_drawn_label_text_reads_on_its_class_colour(colour):
    from matplotlib.colors import to_rgb
    fig = one_box_figure((90, 90, 90), colour)
    label, = [
        t for ax in fig.axes for t in ax.texts if t.get_text() == 'thing 0.90'
    ]
    text = np.asarray(to_rgb(label.get_color())) * 255
    assert samples.contrast(text, colour) >= 4.5


def test_label_text_reads_on_every_class_colour():
    for colour in samples.class_colours(12):
        text = (0, 0, 0) if samples.text_colour(colour) == 'black' else \
            (255, 255, 255)
        assert samples.contrast(text, colour) >= 4.5, colour
