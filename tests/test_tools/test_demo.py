# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/demo.py on detection and segmentation configs: a readable picture
(enlarged, titled, a legend naming the classes), the config's class names
when the checkpoint has none (said once, without mmdet's "COCO classes"
warning), and one line for an input that is not an image."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from helpers import MINI_ARCH, QUICKSTART, REPO, load_tool, run_tool
from PIL import Image

SEG = osp.join(REPO, 'configs', 'seg', 'smt_t_upernet_synth.py')
DIMS = MINI_ARCH['embed_dims']


def tiny_config(folder, kind):
    arch = f'arch=dict(_delete_=True, **{MINI_ARCH!r})'
    if kind == 'det':
        text = (f'_base_ = [{QUICKSTART!r}]\n'
                f'model = dict(backbone=dict({arch}), '
                f'neck=dict(in_channels={DIMS}))\n')
    else:
        text = (f'_base_ = [{SEG!r}]\n'
                f'model = dict(backbone=dict({arch}), '
                f'decode_head=dict(in_channels={DIMS}, channels=16), '
                f'auxiliary_head=dict(in_channels={DIMS[2]}, channels=16))\n')
    path = folder / f'tiny_{kind}.py'
    path.write_text(text)
    return str(path)


def random_checkpoint(config, path):
    """Random weights, no meta (no class names in the file)."""
    from mmengine.registry import DefaultScope

    from smt_mm.apis import build_model
    from smt_mm.launch.config import load_config, task_of
    cfg = load_config(config)
    with DefaultScope.overwrite_default_scope(task_of(cfg)):
        torch.manual_seed(0)
        model = build_model(cfg)
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    image = root / 'shapes.png'
    pixels = np.full((96, 128, 3), 90, np.uint8)
    pixels[20:60, 20:60] = (250, 240, 30)
    Image.fromarray(pixels).save(image)
    configs = {kind: tiny_config(root, kind) for kind in ('det', 'seg')}
    return dict(
        root=root,
        image=str(image),
        configs=configs,
        checkpoints={
            kind: random_checkpoint(config, root / f'{kind}.pth')
            for kind, config in configs.items()
        })


def demo(*args, check=True):
    return run_tool([sys.executable, 'tools/demo.py', *map(str, args)],
                    check=check)


def test_detection_demo_says_where_classes_come_from(case):
    out = case['root'] / 'det.png'
    proc = demo(case['image'], case['configs']['det'],
                case['checkpoints']['det'], '--out', out, '--score-thr', '0')
    printed = proc.stdout + proc.stderr
    assert 'COCO classes' not in printed
    assert printed.count('class names: from the config (3)') == 1
    assert proc.stdout.strip().splitlines()[-1].endswith(f'drawn to {out}')
    with Image.open(out) as picture:
        width, height = picture.size
    # 96 px short side enlarged 6x to 576, title above, legend below
    assert width >= 128 * 6 and height >= 96 * 6 + 40


def test_segmentation_demo_shows_image_and_classes(case, monkeypatch, capsys):
    from smt_mm.visualization import samples
    tool = load_tool('tools/demo.py')
    drawn = {}
    real = samples.draw_figure
    monkeypatch.setattr(samples, 'draw_figure',
                        lambda *a, **k: drawn.setdefault('fig', real(*a, **k)))
    out = case['root'] / 'seg.png'
    tool.main([
        case['image'], case['configs']['seg'], case['checkpoints']['seg'],
        '--out',
        str(out)
    ])
    fig = drawn['fig']
    assert [ax.get_title() for ax in fig.axes] == ['shapes.png', 'prediction']
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    classes = ('ground', 'disc', 'stripes', 'checker')
    assert legend and set(legend) <= set(classes)
    with Image.open(out) as picture:
        width, height = picture.size
    assert width >= 2 * 128 * 6 and height >= 96 * 6
    assert 'class names: from the config (4)' in capsys.readouterr().out


def test_input_that_is_not_an_image_is_one_line(case):
    proc = demo(
        osp.join(REPO, 'README.md'),
        case['configs']['det'],
        case['checkpoints']['det'],
        '--out',
        case['root'] / 'never.png',
        check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'is not an image' in last
    assert not (case['root'] / 'never.png').exists()


@pytest.fixture
def folder(case, tmp_path):
    """Two images (not in name order of creation), a text file and a
    subfolder image that is not drawn."""
    with Image.open(case['image']) as picture:
        picture.save(tmp_path / 'b.png')
        picture.transpose(Image.FLIP_TOP_BOTTOM).save(tmp_path / 'a.JPG')
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / 'sub').mkdir()
    Image.open(case['image']).save(tmp_path / 'sub' / 'c.png')
    return tmp_path


def test_folder_draws_each_image_in_name_order(case, folder, capsys):
    out_dir = folder / 'drawn'
    load_tool('tools/demo.py').main([
        str(folder), case['configs']['det'], case['checkpoints']['det'],
        '--out-dir',
        str(out_dir), '--score-thr', '0'
    ])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(' drawn to ')[-1] for line in lines[-2:]
            ] == [str(out_dir / 'a.png'),
                  str(out_dir / 'b.png')]
    assert sorted(p.name for p in out_dir.iterdir()) == ['a.png', 'b.png']
    with Image.open(out_dir / 'a.png') as picture:
        assert picture.size[0] >= 128 * 6


@pytest.mark.parametrize(
    'extra, expected',
    [([], 'is a folder: give --out-dir DIR'),
     (['--out', 'x.png'], 'is a folder: --out names one file'),
     (['--out-dir', '{folder}/sub/b.png'], 'is a file, not a folder')])
def test_folder_needs_an_output_folder(case, folder, extra, expected):
    from helpers import tool_error
    (folder / 'sub' / 'b.png').write_bytes(b'')
    args = [folder, case['configs']['det'], case['checkpoints']['det']]
    message = tool_error('tools/demo.py',
                         args + [e.format(folder=folder) for e in extra])
    assert expected in message, message


def test_folder_without_images_is_one_line(case, tmp_path):
    from helpers import tool_error
    (tmp_path / 'notes.txt').write_text('x')
    message = tool_error('tools/demo.py', [
        tmp_path, case['configs']['det'], case['checkpoints']['det'],
        '--out-dir', tmp_path / 'o'
    ])
    assert message.startswith(f'no images in folder {tmp_path} (files '
                              'ending in .jpg, .jpeg, .png')


WRONG_TASK = ('holds auxiliary_head, decode_head (a segmentation model) but '
              "the config's MaskRCNN has roi_head, rpn_head (a detection "
              'model); give a checkpoint trained with this config')


@pytest.mark.parametrize('tool', ['tools/demo.py', 'tools/test.py'])
def test_checkpoint_of_another_task_is_refused_first(case, tmp_path, tool):
    """Before the model is built: the refusal, not the runner's config dump
    and weight-init log (about 790 lines for tools/test.py)."""
    if tool == 'tools/demo.py':
        args = [
            case['image'], case['configs']['det'], case['checkpoints']['seg'],
            '--out', tmp_path / 'never.png'
        ]
    else:
        args = [
            case['configs']['det'], case['checkpoints']['seg'], '--work-dir',
            tmp_path / 'work'
        ]
    proc = run_tool([sys.executable, tool, *map(str, args)], check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"error: checkpoint {case['checkpoints']['seg']} "
                    f'{WRONG_TASK}'), proc.stderr[-2000:]
    printed = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(printed) <= 3, printed[:20]
    assert not (tmp_path / 'never.png').exists()


@pytest.mark.parametrize('tool', ['tools/demo.py', 'tools/test.py'])
def test_checkpoint_of_another_architecture_is_refused_first(
        case, tmp_path, tool):
    """A narrow-SMT detector's checkpoint for the SMT-T quickstart config:
    one line naming the backbone's first mismatches, before the model is
    built (not the strict load's error after the runner's log)."""
    checkpoint = case['checkpoints']['det']
    if tool == 'tools/demo.py':
        args = [
            case['image'], QUICKSTART, checkpoint, '--out',
            tmp_path / 'never.png'
        ]
    else:
        args = [QUICKSTART, checkpoint, '--work-dir', tmp_path / 'work']
    proc = run_tool([sys.executable, tool, *map(str, args)], check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: checkpoint {checkpoint} does not fit the config's SMT "
        "backbone (arch='tiny'): 225 shape mismatch: "
        'stages.0.patch_embed.stem.conv.weight (file (16, 3, 3, 3), model '
        '(64, 3, 3, 3))'), proc.stderr[-2000:]
    assert last.endswith('give a checkpoint trained with this config')
    printed = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(printed) <= 3, printed[:20]
