# Copyright (c) SMT-MM contributors. All rights reserved.
"""Class names for a model's outputs: where they come from, in one place
(the demo, Grad-CAM and the ONNX runtime example all ask)."""
from importlib import import_module
from typing import Dict, List, Optional

from smt_mm.config_tree import innermost_dataset
from smt_mm.launch.config import task_of


def config_dataset_meta(cfg) -> Dict:
    """The class names (and palette) of the config's test dataset: its
    ``metainfo``, else its dataset type's ``METAINFO`` (e.g. ImageNet's
    1000, COCO's 80); an empty dict when neither names classes."""
    dataset = innermost_dataset(
        (cfg.get('test_dataloader') or {}).get('dataset') or {})
    metainfo = dataset.get('metainfo')
    if metainfo and metainfo.get('classes'):
        return dict(metainfo)
    if isinstance(dataset.get('type'), str):
        registry = import_module(f'{task_of(cfg)}.registry').DATASETS
        found = registry.get(dataset['type'])
        return dict(getattr(found, 'METAINFO', None) or {})
    return {}


def class_names(cfg,
                num_classes: int,
                checkpoint_meta: Optional[Dict] = None) -> Optional[List[str]]:
    """Names for the ``num_classes`` outputs of the config's model.

    Args:
        cfg (Config): The full config.
        num_classes (int): The number of classes the model predicts.
        checkpoint_meta (dict, optional): The checkpoint's ``meta``; its
            ``dataset_meta`` (the training set's classes) comes first.

    Returns:
        list[str] | None: The first of the checkpoint's classes, the
        config dataset's (its ``metainfo``, its ``classes``, its type's)
        with exactly ``num_classes`` names; None when none fits.
    """
    dataset = innermost_dataset(
        (cfg.get('test_dataloader') or {}).get('dataset') or {})
    candidates = [
        ((checkpoint_meta or {}).get('dataset_meta') or {}).get('classes'),
        config_dataset_meta(cfg).get('classes'),
        dataset.get('classes'),
    ]
    for classes in candidates:
        # names (not a file of them) for every output of the head
        if isinstance(classes, (list, tuple)) and len(classes) == num_classes:
            return [_short(str(c)) for c in classes]
    return None


# Names are drawn on pictures and printed: a checkpoint's names may be any
# size, and matplotlib lays out megabyte-long labels for minutes.
MAX_NAME_LENGTH = 64


def _short(name: str) -> str:
    return name if len(name) <= MAX_NAME_LENGTH else \
        name[:MAX_NAME_LENGTH - 3] + '...'
