# Copyright (c) SMT-MM contributors. All rights reserved.
"""Run an ONNX file written by export_onnx.py in onnxruntime on one image,
with the config's preprocessing.

    python tools/deployment/onnx_inference.py CONFIG MODEL.onnx IMAGE
        [--topk 5] [--out seg.png] [--overwrite]

The exported graph starts after the data preprocessor, so this does what
testing does before the model:

1. the config's test pipeline (resize, crop; annotation loading left
   out), as in ``tools/test.py``: the image as a (3, H, W) uint8 array in
   the loader's channel order (BGR with mmcv);
2. the data preprocessor, in numpy: BGR -> RGB if it converts, ``(x -
   mean) / std``, zero padding of H and W to its ``pad_size_divisor``;
3. onnxruntime on the (1, 3, H, W) float32 array.

It prints the top-k classes (classification), the classes of the label
map (segmentation; ``--out`` draws it beside the image) or the feature
maps' shapes (detection: the graph ends at the neck). The numpy steps are
the part to copy into an application; the pipeline of step 1 can be
replaced by any resize giving the same size.
"""
import argparse
import os.path as osp
from typing import Dict, List

import numpy as np

import smt_mm  # noqa: F401  (registers SMT's configs)
from smt_mm.errors import LaunchError
from smt_mm.utils.cli import run_cli
from smt_mm.utils.config import load_config, task_of


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'config', help='the config the file was exported '
        'from')
    parser.add_argument('model', help='ONNX file (export_onnx.py)')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        '--topk', type=int, default=5, help='classes printed (classifiers)')
    parser.add_argument(
        '--out', help='segmentation: draw the label map to this PNG')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be at least 1, got {args.topk}')
    return args


# ----------------------------------------------------------------------
# Preprocessing: the config's test pipeline, then its data preprocessor
# ----------------------------------------------------------------------
def preprocessor_settings(cfg) -> Dict:
    """mean, std, channel conversion and padding of the data
    preprocessor (mmpretrain configs keep it at the top level)."""
    pre = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    mean = pre.get('mean')
    std = pre.get('std')
    return dict(
        mean=np.asarray(mean if mean is not None else [0.] * 3, np.float32),
        std=np.asarray(std if std is not None else [1.] * 3, np.float32),
        to_rgb=bool(pre.get('to_rgb', pre.get('bgr_to_rgb', False))),
        pad_size_divisor=int(pre.get('pad_size_divisor') or 1))


def pipeline_image(cfg, path: str) -> np.ndarray:
    """``path`` through the config's test pipeline: (3, H, W) uint8 in the
    loader's channel order."""
    import mmcv
    from mmengine.registry import init_default_scope

    from smt_mm.visualization.inputs import inference_pipeline
    try:
        readable = mmcv.imread(path) is not None
    except Exception:  # mmcv raises several types for non-images
        readable = False
    if not readable:
        raise LaunchError(f'{path} is not an image mmcv can read')
    task = task_of(cfg)
    init_default_scope(task)
    data = inference_pipeline(cfg, task)(dict(img_path=path))
    return data['inputs'].numpy()


def normalise(image: np.ndarray, settings: Dict) -> np.ndarray:
    """What the data preprocessor does to one (3, H, W) image: the
    (1, 3, H', W') float32 network input."""
    x = image.astype(np.float32)
    if settings['to_rgb']:
        x = x[::-1]
    x = (x - settings['mean'][:, None, None]) / settings['std'][:, None, None]
    divisor = settings['pad_size_divisor']
    height, width = x.shape[1:]
    pad_h, pad_w = -height % divisor, -width % divisor
    if pad_h or pad_w:  # mmdet pads the normalised image with zeros
        x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w)))
    return np.ascontiguousarray(x[None])


# ----------------------------------------------------------------------
# onnxruntime
# ----------------------------------------------------------------------
def open_session(path: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise LaunchError('onnxruntime is not installed: pip install -e '
                          '".[deploy]"') from None
    if not osp.isfile(path):
        raise LaunchError(f'ONNX file not found: {path}')
    try:
        return ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    except Exception as err:  # onnxruntime's own error types
        first = str(err).strip().splitlines()[0]
        raise LaunchError(f'onnxruntime cannot load {path}: {first}') from None


def check_input_shape(session, array: np.ndarray) -> None:
    """A fixed-shape file takes its export size only: one line naming
    both sizes."""
    expected = session.get_inputs()[0].shape
    for want, got in zip(expected, array.shape):
        if isinstance(want, int) and want != got:
            size = 'x'.join(map(str, array.shape))
            raise LaunchError(
                f'this ONNX file takes input {expected} but the test '
                f'pipeline gives {size}; export it with --dynamic or '
                f'--shape {array.shape[2]} {array.shape[3]}')


def run(session, array: np.ndarray) -> List[np.ndarray]:
    check_input_shape(session, array)
    name = session.get_inputs()[0].name
    return session.run(None, {name: array})


# ----------------------------------------------------------------------
# Reading the outputs
# ----------------------------------------------------------------------
def class_names(cfg, num_classes: int):
    """The config dataset's class names (its metainfo, or its type's)."""
    from importlib import import_module

    from smt_mm.utils.config import innermost_dataset
    dataset = innermost_dataset(
        (cfg.get('test_dataloader') or {}).get('dataset') or {})
    classes = (dataset.get('metainfo') or {}).get('classes')
    if not classes and isinstance(dataset.get('type'), str):
        registry = import_module(f'{task_of(cfg)}.registry').DATASETS
        found = registry.get(dataset['type'])
        classes = getattr(found, 'METAINFO', {}).get('classes')
    if classes and len(classes) == num_classes:
        return [str(c) for c in classes]
    return [str(i) for i in range(num_classes)]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def report_classes(logits, cfg, topk: int) -> List:
    probs = softmax(logits[0].astype(np.float64))
    names = class_names(cfg, len(probs))
    top = np.argsort(-probs)[:topk]
    return [(names[i], float(probs[i])) for i in top]


def report_segmentation(seg_logits, cfg, image, args):
    label_map = seg_logits[0].argmax(0)
    names = class_names(cfg, seg_logits.shape[1])
    labels, counts = np.unique(label_map, return_counts=True)
    shares = [(names[i], c / label_map.size) for i, c in zip(labels, counts)]
    if args.out:
        from smt_mm.visualization import samples
        rgb = np.ascontiguousarray(image.transpose(1, 2, 0)[..., ::-1])
        samples.render([
            samples.Panel(rgb, osp.basename(args.image)),
            samples.Panel(
                rgb, 'prediction (onnxruntime)', label_map=label_map)
        ],
                       names,
                       path=args.out)
    return shares


def main(argv=None):
    args = parse_args(argv)
    if args.out and osp.exists(args.out) and not args.overwrite:
        raise LaunchError(f'--out {args.out} exists; pass --overwrite to '
                          'replace it')
    cfg = load_config(args.config)
    task = task_of(cfg)
    session = open_session(args.model)
    image = pipeline_image(cfg, args.image)
    array = normalise(image, preprocessor_settings(cfg))
    outputs = run(session, array)
    size = 'x'.join(map(str, array.shape))
    if task == 'mmpretrain':
        top = report_classes(outputs[0], cfg, args.topk)
        listed = '; '.join(f'{name} ({p:.3f})' for name, p in top)
        print(f'input {size}: top-{len(top)} {listed}')
        return top
    if task == 'mmseg':
        shares = report_segmentation(outputs[0], cfg, image, args)
        listed = '; '.join(f'{name} {share:.1%}' for name, share in shares)
        drawn = f'; drawn to {args.out}' if args.out else ''
        print(f'input {size}: classes {listed}{drawn}')
        return shares
    shapes = ['x'.join(map(str, o.shape)) for o in outputs]
    print(f'input {size}: feature maps {", ".join(shapes)} (the graph ends '
          'at the neck; boxes need the PyTorch heads)')
    return shapes


if __name__ == '__main__':
    run_cli(main)
