# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks that the data a config points at exists, before a run starts."""
import os
import os.path as osp

from mmengine.config import Config, ConfigDict

from smt_mm.errors import LaunchError
from .config import innermost_dataset


def check_datasets(cfg: Config, *splits: str) -> None:
    """Fail early, naming the path, when a dataset's annotation file or
    image folder is missing or empty.

    Without this the run builds the whole model first and then fails inside
    a dataset or a data worker with a long traceback. ``splits`` are
    dataloader names such as ``'train_dataloader'``; absent ones and remote
    paths (``s3://``...) are skipped.
    """
    for split in splits:
        loader = cfg.get(split)
        if not loader or 'dataset' not in loader:
            continue
        for problem in _dataset_problems(innermost_dataset(loader.dataset)):
            raise LaunchError(f'{split}.dataset: {problem}')


def _dataset_problems(dataset: ConfigDict):
    root = dataset.get('data_root') or ''
    if '://' in str(root):
        return
    if root and not osp.isdir(root):
        yield f'data_root folder not found: {root}'
        return
    ann_file = dataset.get('ann_file')
    if ann_file:
        path = osp.join(root, ann_file)
        if not osp.isfile(path):
            yield f'annotation file not found: {path}'
    prefix = dataset.get('data_prefix') or {}
    folders = prefix.values() if isinstance(prefix, dict) else [prefix]
    for folder in folders:
        if not isinstance(folder, str) or not folder or '://' in folder:
            continue
        path = osp.join(root, folder)
        if not osp.isdir(path):
            yield f'data folder not found: {path}'
        elif not any(os.scandir(path)):
            yield f'data folder is empty: {path}'
