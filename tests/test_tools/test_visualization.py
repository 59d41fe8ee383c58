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
from helpers import (MINI_ARCH, QUICKSTART, REPO, assert_picture, load_tool,
                     run_tool)
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
    from smt_mm.launch.config import load_config
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
    tool = load_tool('tools/analysis/vis_modulation.py')

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
    tool = load_tool('tools/analysis/vis_modulation.py')

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
    tool = load_tool('tools/analysis/erf.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(
            [str(work / 'cls.py'), '--out',
             str(tmp_path), '--size', '100'])
    assert exit_info.value.code == 2
    assert 'multiple of 32' in capsys.readouterr().err


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
    from smt_mm.launch.config import load_config
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


def test_show_dir_uses_the_readable_visualizers(tmp_path):
    from mmengine.registry import VISUALIZERS as ROOT
    from mmengine.registry import DefaultScope

    from smt_mm.launch.config import load_config
    from smt_mm.visualization.visualizers import (ReadableDetVisualizer,
                                                  ReadableSegVisualizer,
                                                  enable_visualization)
    for config, task, kind in ((QUICKSTART, 'mmdet', ReadableDetVisualizer),
                               (osp.join(REPO,
                                         'configs/seg/smt_t_upernet_synth.py'),
                                'mmseg', ReadableSegVisualizer)):
        cfg = load_config(config)
        enable_visualization(cfg, task, str(tmp_path / task))
        vis_cfg = dict(cfg.visualizer, name=f'show_dir_{task}')
        with DefaultScope.overwrite_default_scope(task):
            assert isinstance(ROOT.build(vis_cfg), kind)


def test_grad_cam_tool_names_the_class_at_a_readable_size(tmp_path, capsys):
    """tools/analysis/grad_cam.py on the digits classifier: a 32x32 input
    drawn in 400-px panels, the class name in the title."""
    pytest.importorskip('pytorch_grad_cam')
    tool = load_tool('tools/analysis/grad_cam.py')

    from smt_mm.apis import build_model
    from smt_mm.errors import LaunchError
    from smt_mm.launch.config import load_config
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


# ----------------------------------------------------------------------
# Training samples (browse_dataset) and test results (test.py --show-dir)
# ----------------------------------------------------------------------
DET = 'configs/det/smt_t_maskrcnn_synth-quickstart.py'
SEG = 'configs/seg/smt_t_upernet_synth.py'


def make_synthetic_data(kind, folder, num_train, num_val):
    from smt_mm.datasets.synthetic_ade import make_synthetic_ade
    from smt_mm.datasets.synthetic_coco import make_synthetic_coco
    maker = make_synthetic_coco if kind == 'coco' else make_synthetic_ade
    maker(str(folder), num_train=num_train, num_val=num_val)


@pytest.mark.parametrize('config,kind', [(DET, 'coco'), (SEG, 'ade')])
def test_browse_dataset_draws_samples(tmp_path, config, kind):
    data = tmp_path / kind
    make_synthetic_data(kind, data, num_train=4, num_val=2)
    out = tmp_path / 'browse'
    run_tool([
        sys.executable, 'tools/analysis/browse_dataset.py', config,
        '--output-dir',
        str(out), '--num', '3', '--cfg-options',
        f'train_dataloader.dataset.data_root={data}/'
    ])
    pngs = sorted(out.glob('*.png'))
    assert len(pngs) == 3
    for png in pngs:
        # the 128-px samples enlarged to a readable 512 px
        assert_picture(png, min_size=512)


def test_seg_test_show_dir_draws_small_sets_without_train_data(tmp_path):
    """``--show-dir`` draws every test image (``--interval`` 1) and a test
    run does not need the training data (mmseg's hook used to build the
    train loader)."""
    import smt_mm  # noqa: F401
    from smt_mm.apis import build_model
    from smt_mm.launch.config import load_config
    data = tmp_path / 'ade'
    make_synthetic_data('ade', data, num_train=2, num_val=3)
    checkpoint = tmp_path / 'seg.pth'  # weights as built: drawing is tested
    torch.save({'state_dict': build_model(load_config(SEG)).state_dict()},
               checkpoint)
    show = tmp_path / 'show'
    run_tool([
        sys.executable, 'tools/test.py', SEG,
        str(checkpoint), '--work-dir',
        str(tmp_path / 'test'), '--show-dir',
        str(show), '--cfg-options',
        f'test_dataloader.dataset.data_root={data}',
        f'train_dataloader.dataset.data_root={tmp_path}/missing'
    ])
    pictures = sorted(show.rglob('*.png'))
    assert len(pictures) == 3
    for picture in pictures:
        # image, annotation and prediction side by side, 128 px -> 512 px
        assert_picture(picture, min_size=512 + 50)
        with Image.open(picture) as img:
            assert img.size[0] >= 3 * 512
