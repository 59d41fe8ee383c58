# Copyright (c) SMT-MM contributors. All rights reserved.
"""A config's whole model (mmdet, mmseg or mmpretrain), built for
inference, analysis or export: the one place the tools build it."""
import copy
from typing import Optional

from smt_mm.errors import LaunchError
from smt_mm.launch.config import task_of

# (H, W) of an input when neither the user nor the config names one: the
# sizes the papers report complexity at (ImageNet, ADE20K crop, COCO).
DEFAULT_INPUT_SHAPES = {
    'mmpretrain': (224, 224),
    'mmseg': (512, 512),
    'mmdet': (800, 1280),
}


def _quiet_init(model) -> None:
    """``init_weights`` without mmengine's INFO line per parameter."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def build_model(cfg,
                checkpoint: Optional[str] = None,
                device: str = 'cpu',
                random_note: Optional[str] = None):
    """The config's model in eval mode on ``device``.

    Args:
        cfg (Config): A full mmdet / mmseg / mmpretrain config.
        checkpoint (str, optional): Weights to load, read safely and loaded
            strictly (an official release file into a classifier too); a
            file that does not fit stops with one line. Without it the
            model is randomly initialised.
        device (str): Where the model goes. Defaults to ``'cpu'``.
        random_note (str, optional): Printed as a warning when the model
            is random (no ``checkpoint``); None prints nothing.

    The backbone's own ``init_cfg`` (a pretrained file) is ignored: the
    checkpoint holds all weights, or the model is random. SyncBN becomes
    BatchNorm (one process, CPU).

    Examples:
        >>> from mmengine import Config
        >>> from smt_mm.apis import build_model
        >>> cfg = Config.fromfile('configs/cls/smt_t_digits.py')
        >>> model = build_model(cfg)  # random weights
    """
    from importlib import import_module

    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope

    from smt_mm.models.utils import load_model_weights
    task = task_of(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    if task == 'mmpretrain':
        # mmpretrain configs keep the preprocessor at the top level
        model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    if 'backbone' not in model_cfg:
        raise LaunchError('the config has no model.backbone')
    if isinstance(model_cfg.backbone.get('init_cfg'), dict):
        model_cfg.backbone.init_cfg = None
    registry = import_module(f'{task}.registry').MODELS
    with DefaultScope.overwrite_default_scope(task):
        model = revert_sync_batchnorm(registry.build(model_cfg))
    if checkpoint is None:
        if random_note:
            print(f'warning: {random_note}')
        _quiet_init(model)
    else:
        load_model_weights(model, checkpoint)
    return model.to(device).eval()
