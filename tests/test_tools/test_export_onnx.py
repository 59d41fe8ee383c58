# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/deployment/export_onnx.py and onnx_inference.py: the exported
classifier, segmentor and detector backbone + neck compute in onnxruntime
what the PyTorch model computes, at sizes other than the export size too;
inputs below SMT's minimum are refused by the tool and by the graph; a
missing onnxruntime or an existing output file give one line. The library
pieces (smt_mm.deployment) are tested in tests/test_deployment."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from helpers import MINI_ARCH, REPO, load_tool, run_tool

from smt_mm.apis import build_model
from smt_mm.deployment.onnx_export import ExportWrapper
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import run_cli
from smt_mm.launch.config import load_config

TOOL = osp.join(REPO, 'tools', 'deployment', 'export_onnx.py')
CONFIGS = {
    'cls': 'configs/cls/smt_t_in1k.py',
    'seg': 'configs/seg/smt_t_upernet_synth.py',
    'det': 'configs/det/smt_t_maskrcnn_synth-quickstart.py',
}
DIMS = MINI_ARCH['embed_dims']
# a tiny SMT with one MSA block in stage 3 and one in stage 4
TINY_ARCH = dict(MINI_ARCH, depths=[1, 1, 2, 1])
ARCH = ['model.backbone.arch._delete_=True'] + [
    f'model.backbone.arch.{key}={value!r}'.replace(' ', '')
    for key, value in TINY_ARCH.items()
]
HEADS = {
    'cls': [f'model.head.in_channels={DIMS[-1]}'],
    'seg': [
        f'model.decode_head.in_channels={DIMS}'.replace(' ', ''),
        'model.decode_head.channels=16',
        f'model.auxiliary_head.in_channels={DIMS[2]}',
        'model.auxiliary_head.channels=16'
    ],
    'det': [f'model.neck.in_channels={DIMS}'.replace(' ', '')],
}
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def tool():
    return load_tool(osp.relpath(TOOL, REPO))


@pytest.fixture(scope='module')
def ort():
    return pytest.importorskip('onnxruntime')


def options(kind):
    return ARCH + HEADS[kind]


def tiny_model_and_checkpoint(tool, kind, folder):
    """The tiny model of ``kind`` (random weights) and a checkpoint of
    it, so the test knows the weights the tool exports."""
    config = osp.join(REPO, CONFIGS[kind])
    args = tool.parse_args(
        [config, '--out', 'unused', '--cfg-options', *options(kind)])
    cfg = load_config(config, args.cfg_options)
    task = cfg.default_scope
    torch.manual_seed(0)
    model = build_model(cfg)
    checkpoint = str(folder / f'{kind}.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return ExportWrapper(model, task).eval(), checkpoint


def difference(onnx_out, torch_out):
    """Max absolute error, relative to the output's scale above 1."""
    reference = torch_out.numpy()
    assert onnx_out.shape == reference.shape
    scale = max(1., float(np.abs(reference).max()))
    return float(np.abs(onnx_out - reference).max()) / scale


def export(tool, kind, checkpoint, out, *extra):
    argv = [
        osp.join(REPO, CONFIGS[kind]), checkpoint, '--out',
        str(out), *extra, '--cfg-options', *options(kind)
    ]
    return tool.main(argv)


@pytest.mark.parametrize('kind,shape,outputs', [
    ('cls', (64, 96), ['logits']),
    ('seg', (64, 64), ['seg_logits']),
    ('det', (64, 96), ['feat0', 'feat1', 'feat2', 'feat3', 'feat4']),
])
def test_dynamic_export_matches_pytorch(tool, ort, tmp_path, kind, shape,
                                        outputs, capsys):
    wrapper, checkpoint = tiny_model_and_checkpoint(tool, kind, tmp_path)
    out = tmp_path / f'{kind}.onnx'
    results = export(tool, kind, checkpoint, out, '--dynamic', '--shape',
                     *map(str, shape))
    # the tool checked the export size and a second size at batch 2
    sizes = [size for size, _, _ in results]
    assert sizes == [
        f'1x3x{shape[0]}x{shape[1]}', f'2x3x{shape[0] + 32}x{shape[1] + 17}'
    ]
    assert all(diff <= TOLERANCE for _, _, diff in results)
    printed = capsys.readouterr().out
    assert 'dynamic axes:   batch, height, width' in printed
    assert 'refused by the graph' in printed

    # an independent check at a third size, against the saved weights
    session = ort.InferenceSession(
        str(out), providers=['CPUExecutionProvider'])
    assert [o.name for o in session.get_outputs()] == outputs
    assert session.get_inputs()[0].shape == ['batch', 3, 'height', 'width']
    inputs = torch.randn(3, 3, 75, 41)
    with torch.no_grad():
        expected = wrapper(inputs)
    got = session.run(None, {'input': inputs.numpy()})
    assert len(got) == len(expected)
    for onnx_out, torch_out in zip(got, expected):
        assert difference(onnx_out, torch_out) <= TOLERANCE
    if kind == 'seg':  # logits at the input size, classes known
        assert got[0].shape == (3, 4, 75, 41)
        assert session.get_outputs()[0].shape == [
            'batch', 4, 'height', 'width'
        ]


def test_graph_refuses_inputs_below_32_pixels(tool, ort, tmp_path):
    import onnx
    wrapper, checkpoint = tiny_model_and_checkpoint(tool, 'cls', tmp_path)
    out = tmp_path / 'cls.onnx'
    export(tool, 'cls', checkpoint, out, '--dynamic', '--shape', '32', '32')
    session = ort.InferenceSession(
        str(out), providers=['CPUExecutionProvider'])
    # the smallest accepted input runs and matches
    inputs = torch.randn(1, 3, 32, 40)
    with torch.no_grad():
        expected = wrapper(inputs)[0]
    got = session.run(None, {'input': inputs.numpy()})[0]
    assert difference(got, expected) <= TOLERANCE
    for small in ((1, 3, 31, 64), (1, 3, 64, 16), (2, 3, 16, 16)):
        with pytest.raises(Exception, match='at_least_32'):
            session.run(None, {'input': np.zeros(small, np.float32)})
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props['min_input_size'] == '32'
    assert props['task'] == 'mmpretrain'


def test_tool_refuses_shape_below_32_in_one_line(tmp_path):
    out = tmp_path / 'small.onnx'
    proc = run_tool([
        sys.executable, TOOL, CONFIGS['cls'], '--out',
        str(out), '--shape', '16', '16'
    ],
                    check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ('error: --shape 16 16 is smaller than the minimum '
                    'input of SMT, 32x32')
    assert not out.exists()


def test_static_export_has_fixed_shape(tool, ort, tmp_path, capsys):
    wrapper, checkpoint = tiny_model_and_checkpoint(tool, 'cls', tmp_path)
    out = tmp_path / 'static.onnx'
    results = export(tool, 'cls', checkpoint, out, '--shape', '64', '48',
                     '--opset', '13')
    assert [size for size, _, _ in results] == ['1x3x64x48']
    assert 'none (fixed 1x3x64x48)' in capsys.readouterr().out
    session = ort.InferenceSession(
        str(out), providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].shape == [1, 3, 64, 48]
    assert session.get_outputs()[0].shape == [1, 1000]


def test_missing_onnxruntime_is_one_line(tool, tmp_path, monkeypatch):
    # None in sys.modules makes `import onnxruntime` raise ImportError
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    out = tmp_path / 'x.onnx'
    argv = [CONFIGS['cls'], '--out', str(out)]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: tool.main(argv))
    message = str(exit_info.value.code)
    assert message.startswith('error: ONNX export needs onnx, onnxruntime')
    assert 'pip install -e ".[deploy]"' in message
    assert '\n' not in message
    assert not out.exists()


def test_existing_output_needs_overwrite(tool, tmp_path):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'model.onnx'
    out.write_text('keep me')
    with pytest.raises(LaunchError, match='exists; pass --overwrite'):
        tool.main([CONFIGS['cls'], '--out', str(out)])
    assert out.read_text() == 'keep me'


def test_missing_checkpoint_is_refused(tool, tmp_path):
    pytest.importorskip('onnxruntime')
    with pytest.raises(LaunchError, match='checkpoint not found'):
        tool.main([
            CONFIGS['cls'],
            str(tmp_path / 'nope.pth'), '--out',
            str(tmp_path / 'x.onnx')
        ])


@pytest.mark.slow
def test_dynamo_exporter_matches_pytorch(tool, ort, tmp_path):
    pytest.importorskip('onnxscript')
    _, checkpoint = tiny_model_and_checkpoint(tool, 'seg', tmp_path)
    results = export(tool, 'seg', checkpoint, tmp_path / 'seg.onnx',
                     '--dynamic', '--dynamo', '--opset', '18', '--shape', '64',
                     '64')
    assert len(results) == 2
    assert all(diff <= TOLERANCE for _, _, diff in results)


def test_no_checkpoint_needs_random_weights_and_says_so(
        tool, tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'random.onnx'
    argv = [osp.join(REPO, CONFIGS['cls']), '--out', str(out)]
    with pytest.raises(LaunchError, match='no CHECKPOINT given.*--random-w'):
        tool.main(argv + ['--cfg-options', *options('cls')])
    assert not out.exists()
    tool.main(argv + ['--random-weights', '--cfg-options', *options('cls')])
    printed = capsys.readouterr().out
    # said before the export and again under the summary
    assert printed.count('warning: RANDOM WEIGHTS exported') == 2
    assert 'weights: RANDOM (no checkpoint)' in printed
    assert out.is_file()


def inference(*args):
    return load_tool('tools/deployment/onnx_inference.py').main(
        [str(a) for a in args])


def tiny_digits_config(folder):
    path = folder / 'tiny_digits.py'
    path.write_text(
        f'_base_ = [{osp.join(REPO, "configs/cls/smt_t_digits.py")!r}]\n'
        f'model = dict(backbone=dict(arch=dict(_delete_=True, '
        f'**{TINY_ARCH!r})), head=dict(in_channels={DIMS[-1]}))\n')
    return str(path)


def test_onnx_inference_does_the_configs_preprocessing(tool, ort, tmp_path,
                                                       capsys):
    """The documented onnxruntime example gives the class probabilities of
    the PyTorch model run as testing runs it (test pipeline, then the
    data preprocessor)."""
    from PIL import Image

    from smt_mm.visualization.inputs import load_image
    config = tiny_digits_config(tmp_path)
    cfg = load_config(config)
    torch.manual_seed(0)
    # with the config's data preprocessor (top level in mmpretrain configs)
    model = build_model(cfg)
    checkpoint = tmp_path / 'digits.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    out = tmp_path / 'digits.onnx'
    tool.main([config, str(checkpoint), '--out', str(out)])
    assert 'export size:    32x32, from the test pipeline (Resize 32x32)' \
        in capsys.readouterr().out
    image = tmp_path / 'seven.png'  # 8 x 8 like the scans, not 32 x 32
    pixels = np.zeros((8, 8), np.uint8)
    pixels[1, 1:7], pixels[2:7, 5] = 200, 230
    Image.fromarray(pixels).convert('RGB').save(image)

    top = inference(config, out, image, '--topk', '10')
    sample = load_image(cfg, model, str(image))
    with torch.no_grad():
        probs = model(sample.inputs, mode='tensor').softmax(-1)[0]
    expected = sorted(((str(i), p) for i, p in enumerate(probs.tolist())),
                      key=lambda item: -item[1])
    assert [name for name, _ in top] == [name for name, _ in expected]
    assert np.allclose([p for _, p in top], [p for _, p in expected],
                       atol=1e-5)
    assert capsys.readouterr().out.startswith('input 1x3x32x32: top-10 ')


def test_onnx_inference_segmentation(tool, ort, tmp_path, capsys):
    from PIL import Image
    _, checkpoint = tiny_model_and_checkpoint(tool, 'seg', tmp_path)
    out = tmp_path / 'seg.onnx'
    export(tool, 'seg', checkpoint, out, '--dynamic')
    # preprocessing and class names come from the config, the model from
    # the file
    config = osp.join(REPO, CONFIGS['seg'])
    image = tmp_path / 'ade.png'
    Image.fromarray(
        np.random.RandomState(0).randint(0, 255, (128, 128, 3)).astype(
            np.uint8)).save(image)
    drawn = tmp_path / 'labels.png'
    shares = inference(config, out, image, '--out', drawn)
    assert abs(sum(share for _, share in shares) - 1) < 1e-6
    assert set(name for name, _ in shares) <= {
        'ground', 'disc', 'stripes', 'checker'
    }
    with Image.open(drawn) as picture:
        assert picture.size[0] >= 2 * 512
