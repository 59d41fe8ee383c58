# Copyright (c) SMT-MM contributors. All rights reserved.
"""Looking inside the model: modulation / attention maps
(tools/analysis/vis_modulation.py) and effective receptive fields
(tools/analysis/erf.py), on tiny random models and small images."""
import hashlib
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from helpers import MINI_ARCH, QUICKSTART, REPO, run_tool
from PIL import Image, ImageDraw

CLS = osp.join(REPO, 'configs/cls/smt_t_in1k.py')
# MINI_ARCH has depths 1, 2, 3, 1: stage 3 alternates SAM, MSA, SAM
MINI_PNGS = [
    'stage1_block1_sam.png', 'stage2_block1_sam.png', 'stage2_block2_sam.png',
    'stage3_block1_sam.png', 'stage3_block2_msa.png', 'stage3_block3_sam.png',
    'stage4_block1_msa.png'
]


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    """Tiny classification and detection configs and a small picture."""
    root = tmp_path_factory.mktemp('vis')
    arch = f'arch=dict(_delete_=True, **{MINI_ARCH!r})'
    (root / 'cls.py').write_text(
        f'_base_ = [{CLS!r}]\n'
        f'model = dict(backbone=dict({arch}), head=dict(in_channels=128))\n')
    (root / 'det.py').write_text(
        f'_base_ = [{QUICKSTART!r}]\n'
        f'model = dict(backbone=dict({arch}),\n'
        '             neck=dict(in_channels=[16, 32, 64, 128]))\n')
    image = Image.new('RGB', (96, 80))
    draw = ImageDraw.Draw(image)
    for x in range(96):
        draw.line([(x, 0), (x, 79)], fill=(2 * x, 60, 200 - 2 * x))
    draw.rectangle([10, 12, 40, 50], fill=(250, 250, 30))
    draw.ellipse([55, 30, 85, 70], fill=(20, 20, 20))
    image.save(root / 'picture.png')
    return root


def digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def assert_picture(path, min_size=150):
    """A readable, non-uniform image."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert('RGB'))
    assert min(pixels.shape[:2]) >= min_size, (path, pixels.shape)
    assert pixels.std() > 5, f'uniform image {path}'


def assert_one_line_error(proc, message):
    """Exit 1 with one ``error:`` line (imports may warn above it)."""
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and message in last, proc.stderr


def vis_modulation(*args, check=True):
    return run_tool(
        [sys.executable, 'tools/analysis/vis_modulation.py', *map(str, args)],
        check=check)


def listed_pngs(stdout):
    return [
        line.strip() for line in stdout.splitlines()
        if line.strip().endswith('.png')
    ]


def test_vis_modulation_cls_random_init(work, tmp_path):
    image = work / 'picture.png'
    before = digest(image)
    out = tmp_path / 'maps'
    proc = vis_modulation(work / 'cls.py', image, '--out', out)
    assert 'randomly initialised' in proc.stdout
    # the test pipeline resizes to 256 and crops 224
    assert 'image after the test pipeline: 224x224' in proc.stdout
    written = listed_pngs(proc.stdout)
    assert [osp.basename(p) for p in written] == MINI_PNGS
    assert sorted(p.name for p in out.iterdir()) == sorted(MINI_PNGS)
    for png in written:
        assert_picture(png, min_size=300)
    # the SAM figure has 6 panels (3 x 2), stage 4's MSA 17 (5 x 4)
    with Image.open(out / 'stage1_block1_sam.png') as sam, \
            Image.open(out / 'stage4_block1_msa.png') as msa:
        assert sam.width > sam.height and msa.width > sam.width
    assert digest(image) == before

    # a second run into the same folder is refused in one line
    proc = vis_modulation(work / 'cls.py', image, '--out', out, check=False)
    assert_one_line_error(proc, '--overwrite')


def test_vis_modulation_det_with_checkpoint(work, tmp_path):
    import smt_mm  # noqa: F401
    from smt_mm.apis import build_model
    from smt_mm.utils.config import load_config
    checkpoint = tmp_path / 'tiny_det.pth'
    model = build_model(load_config(str(work / 'det.py')))
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    image = work / 'picture.png'
    out = tmp_path / 'maps'
    proc = vis_modulation(work / 'det.py', checkpoint, image, '--out', out,
                          '--stages', '3', '4', '--query', '10', '20')
    assert 'randomly' not in proc.stdout
    # Resize to 128 keeping the ratio; padded to 128x128 for the network
    assert 'image after the test pipeline: 128x107' in proc.stdout
    assert 'query pixel (10, 20)' in proc.stdout
    written = sorted(osp.basename(p) for p in listed_pngs(proc.stdout))
    assert written == sorted(
        p for p in MINI_PNGS if p.startswith(('stage3', 'stage4')))
    for png in written:
        assert_picture(out / png, min_size=300)


def test_vis_modulation_bad_query_and_stage(work, tmp_path):
    import vis_modulation as tool

    from smt_mm.errors import LaunchError
    for extra, message in ((['--stages', '5'], 'stages 1..4'),
                           (['--query', '500', '3'], 'outside the image')):
        with pytest.raises(LaunchError, match=message):
            tool.main([
                str(work / 'cls.py'),
                str(work / 'picture.png'), '--out',
                str(tmp_path / 'maps'), '--overwrite', *extra
            ])


def test_input_in_out_dir_is_never_overwritten(work, tmp_path):
    import vis_modulation as tool

    from smt_mm.errors import LaunchError
    out = tmp_path / 'maps'
    out.mkdir()
    image = out / 'stage1_block1_sam.png'
    image.write_bytes((work / 'picture.png').read_bytes())
    before = digest(image)
    with pytest.raises(LaunchError, match='input of this run'):
        tool.main([
            str(work / 'cls.py'),
            str(image), '--out',
            str(out), '--overwrite'
        ])
    assert digest(image) == before


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


@pytest.mark.parametrize('images', [False, True])
def test_erf_tool(work, tmp_path, images):
    out = tmp_path / 'erf'
    args = [
        sys.executable, 'tools/analysis/erf.py', work / 'cls.py', '--out', out,
        '--size', '128', '--num', '2'
    ]
    picture = work / 'picture.png'
    before = digest(picture)
    if images:
        args += ['--images', picture, work]  # a file and a folder
    proc = run_tool(list(map(str, args)))
    assert ('2 images' if images else '2 noise images') in proc.stdout
    names = [f'erf_stage{s}.png' for s in (1, 2, 3, 4)] + ['erf_stages.png']
    assert sorted(p.name
                  for p in out.iterdir()) == sorted(names + ['erf.json'])
    for name in names:
        assert_picture(out / name, min_size=250)
    summary = json.loads((out / 'erf.json').read_text())
    assert summary['size'] == 128 and summary['num_images'] == 2
    if images:
        assert summary['images'] == [str(picture)] * 2
    else:
        assert summary['images'] == 'uniform noise, seed 0'
    sides = {s['stage']: s['side_px'] for s in summary['stages']}
    for stage, side in sides.items():
        assert 1 <= side['20%'] <= side['50%'] <= side['99%'] <= 128, sides
        assert f'stage {stage}: {side["20%"]} / {side["50%"]} / ' \
               f'{side["99%"]}' in proc.stdout
    # global attention and depth: stage 4 sees more than stage 1
    assert sides[4]['50%'] > sides[1]['50%']
    assert sides[4]['99%'] > sides[1]['99%']
    assert digest(picture) == before


def test_erf_size_must_fit_the_stride(work, tmp_path, capsys):
    import erf as tool
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(
            [str(work / 'cls.py'), '--out',
             str(tmp_path), '--size', '100'])
    assert exit_info.value.code == 2
    assert 'multiple of 32' in capsys.readouterr().err


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


def test_mmpretrain_grad_cam_on_stage_output(work, tmp_path):
    """mmpretrain's vis_cam.py works on SMT with ``--target-layers
    backbone.stages.3``: a stage returns a (B, C, H, W) map. Its default
    target, the last norm layer, holds (B, N, C) tokens and fails."""
    pytest.importorskip('pytorch_grad_cam')
    import mmpretrain
    tool = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'visualization',
        'vis_cam.py')
    if not osp.isfile(tool):
        pytest.skip(f'mmpretrain ships no {tool}')
    import smt_mm  # noqa: F401
    from smt_mm.apis import build_model
    from smt_mm.utils.config import load_config
    checkpoint = tmp_path / 'tiny_cls.pth'
    model = build_model(load_config(str(work / 'cls.py')))
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    out = tmp_path / 'cam.png'
    run_tool([
        sys.executable, tool,
        str(work / 'picture.png'),
        str(work / 'cls.py'),
        str(checkpoint), '--target-layers', 'backbone.stages.3', '--save-path',
        str(out)
    ])
    with Image.open(out) as cam:
        assert cam.size == (224, 224)  # the test pipeline's crop
    assert_picture(out, min_size=224)


# ----------------------------------------------------------------------
# Readable pictures of samples (demo, browse_dataset, test.py --show-dir)
# ----------------------------------------------------------------------
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


def test_show_dir_uses_the_readable_visualizers(tmp_path):
    from mmengine.registry import VISUALIZERS as ROOT
    from mmengine.registry import DefaultScope

    from smt_mm.utils.config import enable_visualization, load_config
    from smt_mm.visualization.visualizers import (ReadableDetVisualizer,
                                                  ReadableSegVisualizer)
    for config, task, kind in ((QUICKSTART, 'mmdet', ReadableDetVisualizer),
                               (osp.join(REPO,
                                         'configs/seg/smt_t_upernet_synth.py'),
                                'mmseg', ReadableSegVisualizer)):
        cfg = load_config(config)
        enable_visualization(cfg, task, str(tmp_path / task))
        vis_cfg = dict(cfg.visualizer, name=f'show_dir_{task}')
        with DefaultScope.overwrite_default_scope(task):
            assert isinstance(ROOT.build(vis_cfg), kind)


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


def test_grad_cam_tool_names_the_class_at_a_readable_size(tmp_path, capsys):
    """tools/analysis/grad_cam.py on the digits classifier: a 32x32 input
    drawn in 400-px panels, the class name in the title."""
    pytest.importorskip('pytorch_grad_cam')
    import grad_cam as tool

    from smt_mm.apis import build_model
    from smt_mm.errors import LaunchError
    from smt_mm.utils.config import load_config
    config = tmp_path / 'digits.py'
    config.write_text(
        f'_base_ = [{osp.join(REPO, "configs/cls/smt_t_digits.py")!r}]\n'
        f'model = dict(backbone=dict(arch=dict(_delete_=True, '
        f'**{MINI_ARCH!r})), head=dict(in_channels=128))\n')
    torch.manual_seed(0)
    model = build_model(load_config(str(config)))
    checkpoint = tmp_path / 'digits.pth'
    names = [f'digit {i}' for i in range(10)]
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=names))), checkpoint)
    image = tmp_path / 'scan.png'
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[1:7, 3:5] = 220
    Image.fromarray(pixels).save(image)
    out = tmp_path / 'cam.png'
    args = [str(config), str(checkpoint), str(image), '--out', str(out)]
    tool.main(args + ['--class', 'digit 7'])
    printed = capsys.readouterr().out
    assert printed.startswith('chosen class: digit 7 (p = ')
    with Image.open(out) as picture:
        width, height = picture.size
    assert width >= 2 * 400 and height >= 400, (width, height)
    with pytest.raises(LaunchError, match='--class 12 is out of range'):
        tool.main(args + ['--class', '12', '--overwrite'])
    with pytest.raises(LaunchError, match='exists; pass --overwrite'):
        tool.main(args)
    from matplotlib.figure import Figure
    saved = []
    real = Figure.savefig

    def keep(fig, *a, **k):
        saved.append(fig)
        return real(fig, *a, **k)

    import unittest.mock
    with unittest.mock.patch.object(Figure, 'savefig', keep):
        tool.main(args + ['--overwrite'])
    titles = [ax.get_title() for ax in saved[0].axes if ax.get_title()]
    # "predicted class: NAME (p = ...); top-3: ..."
    predicted = capsys.readouterr().out.split(': ', 1)[1].split(' (p')[0]
    assert titles[0] == 'input 32x32'
    assert titles[1].startswith(f'predicted "{predicted}" (p = ')
    assert 'top-3: ' in saved[0]._suptitle.get_text()
    # the deepest stage with a map of 4x4 cells or more
    assert 'at backbone.stages.1;' in saved[0]._suptitle.get_text()
    assert tool.default_target(model, torch.zeros(1, 3, 224,
                                                  224)) == 'backbone.stages.3'
