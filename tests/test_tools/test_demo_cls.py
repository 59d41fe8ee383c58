"""tools/demo.py on classification configs (the top-k classes drawn on the
image, names from the checkpoint, the config or ImageNet) and the rules for
``--out`` every task shares: never the input image, never an existing file
without ``--overwrite``."""
import os
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
from helpers import MINI_ARCH, REPO, load_tool, run_tool
from PIL import Image

from smt_mm.errors import LaunchError

DIGITS = osp.join(REPO, 'configs', 'cls', 'smt_t_digits.py')
IN1K = osp.join(REPO, 'configs', 'cls', 'smt_t_in1k.py')


def load_demo():
    return load_tool('tools/demo.py')


demo = load_demo()


def tiny_config(folder, base):
    """``base`` with the tiny test architecture."""
    path = osp.join(str(folder), f'tiny_{osp.basename(base)}')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                f'model = dict(backbone=dict(arch=dict(_delete_=True, '
                f'**{MINI_ARCH!r})), head=dict(in_channels=128))\n')
    return path


def ranked_checkpoint(config, path, **meta):
    """Random weights whose head ranks the classes by index (zero weights,
    bias = index), so the top-k is known for any image."""
    from mmpretrain.apis import get_model

    from smt_mm.launch.config import load_config
    state = get_model(load_config(config)).state_dict()
    state['head.fc.weight'].zero_()
    num_classes = state['head.fc.bias'].numel()
    state['head.fc.bias'].copy_(torch.arange(num_classes) / num_classes * 5)
    torch.save(dict(state_dict=state, meta=meta), path)
    return str(path)


@pytest.fixture(scope='module')
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_cls')
    image = root / 'input.png'
    pixels = np.random.RandomState(0).randint(0, 255, (30, 40, 3))
    Image.fromarray(pixels.astype(np.uint8)).save(image)
    config = tiny_config(root, DIGITS)
    named = [f'digit-{i}' for i in range(10)]
    return dict(
        root=root,
        image=str(image),
        config=config,
        named=ranked_checkpoint(
            config, root / 'named.pth', dataset_meta=dict(classes=named)),
        plain=ranked_checkpoint(config, root / 'plain.pth'))


def run_demo(capsys, *args):
    """tools/demo.py in this process; returns the class names it printed."""
    demo.main([str(a) for a in args])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith('top-')
    listed = line.split(': ', 1)[1].split('; ')
    return [item.rsplit(' (', 1)[0] for item in listed]


def test_top5_with_checkpoint_names(case, capsys):
    out = case['root'] / 'named.png'
    names = run_demo(capsys, case['image'], case['config'], case['named'],
                     '--out', out)
    assert names == ['digit-9', 'digit-8', 'digit-7', 'digit-6', 'digit-5']
    with Image.open(out) as drawn:
        drawn = np.asarray(drawn.convert('RGB'), dtype=np.float32)
    # enlarged to the 512 px short side, with the text box over the image
    assert drawn.shape == (512, 682, 3)
    plain = mmcv.imresize(
        mmcv.imread(case['image'], channel_order='rgb'),
        (682, 512)).astype(np.float32)
    assert np.abs(drawn[:100, :300] - plain[:100, :300]).mean() > 20
    assert np.abs(drawn[-100:] - plain[-100:]).mean() < 2


def test_names_from_config_and_topk(case, capsys):
    names = run_demo(capsys, case['image'], case['config'], case['plain'],
                     '--out', case['root'] / 'plain.png', '--topk', '3')
    assert names == ['9', '8', '7']  # the config's digits classes


def test_imagenet_names(case, capsys):
    config = tiny_config(case['root'], IN1K)
    checkpoint = ranked_checkpoint(config, case['root'] / 'in1k.pth')
    names = run_demo(capsys, case['image'], config, checkpoint, '--out',
                     case['root'] / 'in1k.png', '--topk', '2')
    assert names == [
        'toilet tissue, toilet paper, bathroom tissue', 'ear, spike, capitulum'
    ]


def test_official_release_file(case, capsys, fixtures_dir):
    """An official-format file is converted and loaded strictly."""
    official = osp.join(fixtures_dir, 'smt_tiny_official.pth')
    names = run_demo(capsys, case['image'], case['config'], official, '--out',
                     case['root'] / 'official.png')
    assert len(names) == 5 and set(names) <= {str(d) for d in range(10)}


def test_mismatching_checkpoint_is_refused(case):
    from smt_mm.errors import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError):
        demo.main([
            case['image'], IN1K, case['plain'], '--out',
            str(case['root'] / 'never.png')
        ])
    assert not (case['root'] / 'never.png').exists()


def test_out_is_never_the_input(case, tmp_path):
    image = case['image']
    before = open(image, 'rb').read()
    link = tmp_path / 'link.png'
    os.symlink(image, link)
    hard = tmp_path / 'hard.png'
    os.link(image, hard)
    relative = osp.relpath(image)
    for out in (image, relative, str(link), str(hard)):
        with pytest.raises(LaunchError, match='is an input of this run'):
            demo.main([
                image, case['config'], case['plain'], '--out', out,
                '--overwrite'
            ])
    assert open(image, 'rb').read() == before


def test_existing_out_needs_overwrite(case, capsys, tmp_path):
    out = tmp_path / 'kept.png'
    out.write_bytes(b'keep')
    with pytest.raises(LaunchError, match='exists; pass --overwrite'):
        demo.main(
            [case['image'], case['config'], case['plain'], '--out',
             str(out)])
    assert out.read_bytes() == b'keep'
    run_demo(capsys, case['image'], case['config'], case['plain'], '--out',
             out, '--overwrite')
    assert out.read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(LaunchError, match='is a folder'):
        demo.main([
            case['image'], case['config'], case['plain'], '--out',
            str(tmp_path)
        ])


def test_refusal_is_one_line(case):
    proc = run_tool([
        sys.executable, 'tools/demo.py', case['image'], case['config'],
        case['plain'], '--out', case['image']
    ],
                    check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'error: --out ') and 'Traceback' not in proc.stderr
