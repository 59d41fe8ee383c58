# Copyright (c) SMT-MM contributors. All rights reserved.
"""What the visualisation tools share: images prepared as the model gets
them, the SMT backbone inside a model, and the rules for the output folder
(the model itself comes from :func:`smt_mm.apis.build_model`)."""
import glob
import os
import os.path as osp
from importlib import import_module
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from smt_mm.config_tree import innermost_dataset
from smt_mm.errors import LaunchError
from smt_mm.files import check_image, check_input_file
from smt_mm.launch.config import task_of

# said when a tool draws a model without weights
RANDOM_NOTE = ('no CHECKPOINT given: the model is randomly initialised, so '
               'the maps show an untrained network')


class NetworkInput(NamedTuple):
    """One image as the network sees it.

    Attributes:
        inputs (Tensor): (1, 3, H, W) batch after the data preprocessor
            (normalised, channel order converted, padded).
        image (ndarray): (h, w, 3) uint8 RGB image after the test pipeline
            (h <= H, w <= W: padding goes to the bottom and right).
    """
    inputs: torch.Tensor
    image: np.ndarray


def check_files(*paths: Optional[str]) -> None:
    """Fail with one line if a given input file does not exist."""
    for path in paths:
        if path is not None:
            check_input_file(path, 'file')


def smt_backbone(model):
    """``model.backbone``, checked to be SMT."""
    from smt_mm.models import SMT
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, SMT):
        raise LaunchError('these tools look inside an SMT backbone; '
                          f'model.backbone is {type(backbone).__name__}')
    return backbone


def inference_pipeline(cfg, task: str):
    """The config's test pipeline without annotation loading (an image
    alone has none), built with the task's transforms."""
    from mmcv.transforms import Compose
    dataloader = cfg.get('test_dataloader') or {}
    pipeline = innermost_dataset(dataloader.get('dataset', {})).get(
        'pipeline', cfg.get('test_pipeline'))
    if not pipeline:
        raise LaunchError('the config has no test pipeline '
                          '(test_dataloader.dataset.pipeline)')
    from mmengine.registry import DefaultScope
    registry = import_module(f'{task}.registry').TRANSFORMS
    # the registry builds in the default scope's registry: the task's
    with DefaultScope.overwrite_default_scope(task):
        return Compose([
            registry.build(t) for t in pipeline
            if 'Annotations' not in t['type'].split('.')[-1]
        ])


def _rgb(packed: torch.Tensor) -> np.ndarray:
    """(3, h, w) packed image (OpenMMLab loads BGR) as (h, w, 3) RGB."""
    return np.ascontiguousarray(packed.numpy().transpose(1, 2, 0)[..., ::-1])


def load_image(cfg, model, path: str) -> NetworkInput:
    """Run ``path`` through the test pipeline and the data preprocessor."""
    from mmengine.dataset import pseudo_collate
    check_image(path)
    data = inference_pipeline(cfg, task_of(cfg))(dict(img_path=path))
    if data is None:
        raise LaunchError(f'the test pipeline dropped {path}')
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    return NetworkInput(batch['inputs'], _rgb(data['inputs']))


def preprocess(model, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """A batch of same-size (3, H, W) uint8 BGR images through the model's
    data preprocessor (normalisation and channel order of the config)."""
    return model.data_preprocessor({'inputs': list(images)}, False)['inputs']


def prepare_out_dir(out: str,
                    patterns: Sequence[str],
                    overwrite: bool,
                    inputs: Sequence[str] = ()) -> List[str]:
    """Create ``out`` for a run writing files named like ``patterns``.

    Refuses a folder holding such files of an earlier run unless
    ``overwrite`` (then they are deleted, so the folder shows this run
    only), and never lets an input of the run be deleted or overwritten.
    Returns the deleted files.
    """
    if osp.exists(out) and not osp.isdir(out):
        raise LaunchError(f'--out {out} is a file, not a folder')
    os.makedirs(out, exist_ok=True)
    previous = sorted({
        path
        for pattern in patterns
        for path in glob.glob(osp.join(out, pattern))
    })
    for path in previous:
        if any(osp.exists(p) and osp.samefile(path, p) for p in inputs):
            raise LaunchError(f'{path} is an input of this run and would be '
                              'overwritten; choose another --out')
    if previous and not overwrite:
        raise LaunchError(
            f'{out} already holds {len(previous)} file(s) of an earlier run '
            f'(e.g. {osp.basename(previous[0])}); pass --overwrite to '
            'replace them or choose another --out')
    for path in previous:
        os.remove(path)
    return previous
