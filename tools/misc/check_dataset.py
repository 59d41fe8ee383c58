# Copyright (c) SMT-MM contributors. All rights reserved.
"""Check that the data a config points at is there, before a long run.

    python tools/misc/check_dataset.py CONFIG [--split train|val|test|all]
        [--sample N] [--cfg-options k=v ...]

For each dataloader of the config: the data root and annotation file exist,
the dataset builds (the annotation file parses), how many images and
annotations it has, whether its classes fit the config's ``num_classes``
(and, for COCO files, whether the file has the classes the config names),
and whether the image / label files it refers to exist and are not empty
(0 bytes). Exits 1 with one line per problem (``error: [split] ...`` on
stderr) when something is missing or malformed.
"""
import argparse
import os.path as osp
import random
import sys

import smt_mm  # noqa: F401  (registers SMT, smt_mm:: configs)
from smt_mm.checks.coco_file import (coco_class_problem,
                                     coco_structure_problems, read_coco)
from smt_mm.checks.dataset import data_file_problems, label_list_problems
from smt_mm.config_tree import innermost_dataset
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import add_cfg_options, run_cli
from smt_mm.launch.config import load_config, task_of

SPLITS = ('train', 'val', 'test')
SHOW_MISSING = 5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--split', default='all', choices=(*SPLITS, 'all'))
    parser.add_argument(
        '--sample',
        type=int,
        default=0,
        metavar='N',
        help='check the files of N random entries only '
        '(default: all)')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def _join(root, path):
    if not path or osp.isabs(path) or not root:
        return path
    return osp.join(root, path)


def _model_num_classes(model_cfg) -> set:
    """``num_classes`` of the config's heads (not the class-agnostic RPN)."""
    found = set()

    def walk(node, key=''):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == 'num_classes' and isinstance(v, int) and \
                        'rpn' not in key:
                    found.add(v)
                walk(v, k)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)

    walk(model_cfg)
    return found


def _num_annotations(data_list):
    """Instances (detection) or label maps (segmentation), else None."""
    if data_list and 'instances' in data_list[0]:
        return sum(len(info['instances']) for info in data_list)
    if data_list and 'seg_map_path' in data_list[0]:
        return len(data_list)
    return None


def check_split(cfg, split, sample):
    """Print what ``split``'s dataset holds; return a list of problems."""
    from mmengine.registry import DATASETS
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not loader.get('dataset'):
        print(f'[{split}] no {split}_dataloader in the config, skipped')
        return []
    dataset_cfg = innermost_dataset(loader.dataset)
    name = f'[{split}] {dataset_cfg.get("type")}'
    root = dataset_cfg.get('data_root') or ''
    if root and not osp.isdir(root):
        return [f'{name}: data root not found: {root}']
    ann_file = _join(root, dataset_cfg.get('ann_file') or '')
    if ann_file and not osp.isfile(ann_file):
        return [f'{name}: annotation file not found: {ann_file}']
    prefixes = dataset_cfg.get('data_prefix') or {}
    if isinstance(prefixes, str):  # mmpretrain's short form
        prefixes = dict(img_path=prefixes)
    for key, folder in prefixes.items():
        folder = _join(root, folder)
        if folder and not ann_file and not osp.isdir(folder):
            return [f'{name}: {key} folder not found: {folder}']
    data = None
    if ann_file.endswith('.json'):
        # what mmdet would fail on with a traceback, one line each
        try:
            data = read_coco(ann_file)
        except ValueError as err:  # not JSON, nested too deeply
            return [f'{name}: {err}']
        found = list(coco_structure_problems(ann_file, data))
        if found:
            return [f'{name}: {problem}' for problem in found]
    elif ann_file and cfg.get('default_scope') == 'mmpretrain' and \
            not ann_file.endswith('.pkl'):
        classes = (dataset_cfg.get('metainfo') or {}).get('classes') or ()
        found = list(label_list_problems(ann_file, len(classes) or None))
        if found:
            return [f'{name}: {problem}' for problem in found]
    try:
        dataset = DATASETS.build(dict(dataset_cfg, lazy_init=False))
    except Exception as err:  # whatever a malformed annotation raises
        what = ann_file or root
        return [
            f'{name}: could not read {what}: '
            f'{type(err).__name__}: {err}'.splitlines()[0]
        ]
    data_list = [dataset.get_data_info(i) for i in range(len(dataset))]
    classes = list(dataset.metainfo.get('classes') or [])
    annotations = _num_annotations(data_list)
    print(f'{name}: {len(data_list)} images' +
          (f', {annotations} annotations' if annotations is not None else '') +
          f', {len(classes)} classes, root {root or "(none)"}' +
          (f', annotations {ann_file}' if ann_file else ''))
    problems = []
    if not data_list:
        problems.append(f'{name}: no images found under {root or ann_file}')
    heads = _model_num_classes(cfg.get('model', {}))
    if classes and heads and heads != {len(classes)}:
        problems.append(f'{name}: {len(classes)} dataset classes but the '
                        f'model has num_classes {sorted(heads)}')
    if ann_file.endswith('.json'):
        problem = coco_class_problem(ann_file, classes, data=data)
        if problem:
            problems.append(f'{name}: {problem}')
    entries = data_list
    if sample and sample < len(data_list):
        entries = random.Random(0).sample(data_list, sample)
    checked, missing, empty, _ = data_file_problems(entries)
    print(f'{name}: {checked - len(missing)}/{checked} referenced files '
          'found' + (f', {len(empty)} of them empty' if empty else ''))
    if missing:
        problems.append(f'{name}: {len(missing)} of {checked} referenced '
                        'files missing, e.g. ' +
                        ', '.join(missing[:SHOW_MISSING]))
    if empty:
        problems.append(f'{name}: {len(empty)} of {checked} referenced '
                        'files are empty (0 bytes), e.g. ' +
                        ', '.join(empty[:SHOW_MISSING]))
    return problems


def main(argv=None):
    from mmengine.registry import init_default_scope
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(task_of(cfg))
    splits = SPLITS if args.split == 'all' else (args.split, )
    problems = []
    for split in splits:
        problems += check_split(cfg, split, args.sample)
    for problem in problems[:-1]:
        print(f'error: {" ".join(problem.split())}', file=sys.stderr)
    if problems:
        raise LaunchError(problems[-1])
    print('dataset check passed')


if __name__ == '__main__':
    run_cli(main)
