# Copyright (c) SMT-MM contributors. All rights reserved.
"""smt_mm.visualization: the maps drawn inside the model (mixers, effective
receptive fields), the output-folder rules and the heatmap drawing."""
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import MINI_ARCH


def test_prepare_out_dir(tmp_path):
    from smt_mm.errors import LaunchError
    from smt_mm.visualization.inputs import prepare_out_dir
    out = tmp_path / 'new' / 'dir'
    assert prepare_out_dir(str(out), ['erf*.png'], False) == []
    assert out.is_dir()
    (out / 'erf_stage1.png').write_bytes(b'old')
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(LaunchError, match='--overwrite'):
        prepare_out_dir(str(out), ['erf*.png'], False)
    removed = prepare_out_dir(str(out), ['erf*.png'], True)
    assert [osp.basename(p) for p in removed] == ['erf_stage1.png']
    assert (out / 'notes.txt').exists()  # not an output of the tool
    with pytest.raises(LaunchError, match='not a folder'):
        prepare_out_dir(str(out / 'notes.txt'), ['erf*.png'], True)


def square_sides(score, fractions=(0.2, 0.5, 0.99)):
    from smt_mm.visualization.erf import square_sides
    centre = (score.shape[0] // 2, score.shape[1] // 2)
    return square_sides(score, centre, fractions)


def test_square_sides():
    delta = np.zeros((33, 33))
    delta[16, 16] = 1
    assert square_sides(delta) == {0.2: 1, 0.5: 1, 0.99: 1}
    flat = np.ones((33, 33))
    sides = square_sides(flat, (0.25, 1.0))
    # 17 x 17 = 289 >= 0.25 * 1089 > 15 x 15
    assert sides == {0.25: 17, 1.0: 33}
    yy, xx = np.mgrid[:65, :65]
    blob = np.exp(-((yy - 32)**2 + (xx - 32)**2) / 50.)
    sides = square_sides(blob)
    assert sides[0.2] < sides[0.5] < sides[0.99] < 65


def hooks_left(model):
    return [
        name for name, m in model.named_modules()
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
    ]


@pytest.fixture
def mini_smt():
    from smt_mm.models import SMT
    torch.manual_seed(0)
    model = SMT(arch=dict(MINI_ARCH))
    model.init_weights()
    return model.eval()


def test_hooks_are_removed(mini_smt):
    from smt_mm.errors import SMTError
    from smt_mm.visualization.erf import average_erf
    from smt_mm.visualization.mixers import modulation_maps
    image = torch.randn(1, 3, 64, 64)
    maps = modulation_maps(mini_smt, image, [1, 2, 3, 4], (20, 40))
    assert [(m.mixer.stage, m.mixer.kind) for m in maps] == [(1, 'SAM'),
                                                             (2, 'SAM'),
                                                             (2, 'SAM'),
                                                             (3, 'SAM'),
                                                             (3, 'MSA'),
                                                             (3, 'SAM'),
                                                             (4, 'MSA')]
    sam, msa = maps[0], maps[-1]
    assert sam.maps.shape == (5, 16, 16)  # 4 heads + modulator, stride 4
    assert msa.maps.shape == (16, 2, 2)  # 16 heads, stride 32
    # attention of one query is a distribution over the tokens
    torch.testing.assert_close(msa.maps.sum((1, 2)), torch.ones(16))
    assert not hooks_left(mini_smt)
    scores = average_erf(mini_smt, [image])
    assert sorted(scores) == [1, 2, 3, 4] and not hooks_left(mini_smt)
    # an input the backbone rejects: hooks are removed all the same
    with pytest.raises(SMTError):
        modulation_maps(mini_smt, torch.randn(1, 3, 16, 16), [1], (0, 0))
    with pytest.raises(SMTError):
        average_erf(mini_smt, [torch.randn(1, 3, 16, 16)])
    assert not hooks_left(mini_smt)
    assert all(p.grad is None for p in mini_smt.parameters())


def test_maps_are_the_mixers_own_intermediates(mini_smt):
    """The drawn maps recompose, by the paper's equations written here, to
    the output each mixer gave in the model's forward."""
    import torch.nn.functional as F

    from smt_mm.visualization.mixers import (find_mixers, forward_hooks,
                                             msa_attention, sam_maps)
    mixers = find_mixers(mini_smt, [3])
    sam, msa = mixers[0].module, mixers[1].module
    seen = {}

    def make_hook(key):

        def hook(module, args, output):
            seen[key] = (args[0], args[1], output)

        return hook

    with forward_hooks([('sam', sam), ('msa', msa)], make_hook), \
            torch.no_grad():
        mini_smt(torch.randn(1, 3, 64, 64))
        x, hw_shape, out = seen['sam']
        heads, modulator = sam_maps(sam, x, hw_shape)
        for i, conv in enumerate(sam.local_convs):
            part = F.linear(x, sam.s.weight,
                            sam.s.bias).chunk(sam.num_heads, -1)[i]
            image = part.transpose(1, 2).reshape(1, -1, *hw_shape)
            torch.testing.assert_close(heads[i], conv(image))
        value = F.linear(x, sam.v.weight, sam.v.bias)
        torch.testing.assert_close(
            sam.proj(value * modulator.flatten(2).transpose(1, 2)), out)
        x, hw_shape, out = seen['msa']
        attn = msa_attention(msa, x, hw_shape, 3)  # (1, heads, H, W)
        k_v = F.linear(x, msa.kv.weight, msa.kv.bias)
        v = k_v[..., x.shape[-1]:].view(1, x.shape[1], msa.num_heads, -1)
        mixed = torch.einsum('hn,nhd->hd', attn[0].flatten(1), v[0])
        local = msa.local_conv(k_v[..., x.shape[-1]:].transpose(1, 2).reshape(
            1, -1, *hw_shape)).flatten(2)[0, :, 3]
        torch.testing.assert_close(
            msa.proj(mixed.flatten() + local), out[0, 3])


def test_maps_are_placed_by_stride():
    from smt_mm.visualization.drawing import to_image_grid
    from smt_mm.visualization.mixers import query_token
    maps = torch.arange(6.).view(1, 2, 3)  # a 2 x 3 token grid, stride 4
    # the grid covers 8 x 12 pixels: a bigger image gets its edge values
    grid = to_image_grid(maps, 4, (10, 13))
    assert grid.shape == (1, 10, 13) and grid[0, 9, 12] == 5
    # a smaller (padded) image is cropped; token centres keep their value
    grid = to_image_grid(maps, 4, (7, 9))
    assert grid.shape == (1, 7, 9) and grid[0, 0, 0] == 0
    assert query_token((5, 3), 4, (2, 3)) == 1
    assert query_token((11.9, 7.9), 4, (2, 3)) == 5


def test_erf_squares_stay_inside_the_map():
    from matplotlib.figure import Figure

    from smt_mm.visualization.drawing import _erf_panel, clipped_square
    assert clipped_square((10, 10), 31, (64, 64)) == (-0.5, -0.5, 25.5, 25.5)
    assert clipped_square((32, 32), 5, (64, 64)) == (29.5, 29.5, 34.5, 34.5)
    score = np.ones((64, 64))
    ax = Figure().subplots()
    # the 99% square is wider than the map around an off-centre point
    _erf_panel(ax, score, {0.2: 9, 0.5: 21, 0.99: 63}, (40, 40), 'stage 4')
    for patch in ax.patches:
        x0, y0 = patch.get_xy()
        assert x0 >= -0.5 and y0 >= -0.5
        assert x0 + patch.get_width() <= 63.5
        assert y0 + patch.get_height() <= 63.5
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        '20%: 9 px', '50%: 21 px', '99%: 63 px (cut by the image)'
    ]


def test_heatmap_colour_bars_give_real_values(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from smt_mm.visualization.drawing import draw_heatmaps
    saved = []
    monkeypatch.setattr(Figure, 'savefig',
                        lambda fig, *a, **k: saved.append(fig))
    image = np.zeros((40, 60, 3), np.uint8)
    heat = np.stack(
        [np.linspace(0.02, 0.5, 2400).reshape(40, 60),
         np.full((40, 60), 0.3)])
    draw_heatmaps(
        image,
        heat, ['head 1', 'head 2'],
        'title',
        str(tmp_path / 'x.png'),
        value_label='attention weight')
    fig = saved[0]
    fig.canvas.draw()
    bars = [ax for ax in fig.axes if ax.get_label().startswith('colour bar')]
    assert len(bars) == 2  # one per heat-map, none for the input
    ticks = [[t.get_text() for t in bar.get_yticklabels()] for bar in bars]
    assert ticks[0] == ['0.02', '0.26', '0.5'] and ticks[1] == ['0.3']
    assert any('attention weight' in t.get_text() for t in fig.texts)
