# Copyright (c) SMT-MM contributors. All rights reserved.
"""Evaluate a checkpoint with any SMT-MM config (mmdet, mmseg, mmpretrain).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--metrics-out FILE] [--overwrite] [--show] [--show-dir DIR] [--tta]
        [--cfg-options k=v ...] [--launcher pytorch]

CHECKPOINT may be a path or a URL; it is read safely and loaded strictly
(``--cfg-options load_strict=False`` loads the fitting part).
"""
import argparse
import json
import os
import os.path as osp

import smt_mm  # noqa: F401  (registers SMT and SMTRunner)
from smt_mm.checks.dataset import (check_datasets, data_error_message,
                                   dataset_folder_holding)
from smt_mm.checks.run import check_run_settings
from smt_mm.errors import LaunchError
from smt_mm.files import check_input_file, check_output_file
from smt_mm.launch.cli import add_common_args, parse_launcher_args, run_cli
from smt_mm.launch.config import (add_result_dump, check_writable_file,
                                  drop_training, enable_tta, load_config,
                                  set_work_dir, task_of)
from smt_mm.launch.distributed import setup_distributed
from smt_mm.launch.runner import build_runner
from smt_mm.launch.workdir import check_path_length
from smt_mm.visualization.visualizers import enable_visualization


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save evaluation logs')
    parser.add_argument(
        '--out',
        help='dump predictions: a .pkl file (detection, '
        'classification) or a folder of prediction maps (segmentation)')
    parser.add_argument(
        '--metrics-out', help='also write the metrics to this JSON file')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing --out / --metrics-out files; let '
        'segmentation --out replace prediction maps and --out / --show-dir '
        'write into a folder of the dataset')
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window')
    parser.add_argument(
        '--show-dir', help='save images with predictions drawn here')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='with --show/--show-dir, draw every N-th test batch '
        '(default: every one; mmseg and mmpretrain configs set 50 or more, '
        'which draws nothing on small test sets)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each shown image stays')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation (tta_model and '
        'tta_pipeline of the config)')
    add_common_args(parser)
    return parse_launcher_args(parser, argv)


def check_outputs(args) -> None:
    """Outputs never replace an input, nor (without --overwrite) any
    existing file."""
    inputs = [p for p in (args.config, args.checkpoint) if osp.exists(p)]
    for flag, path in (('--out', args.out), ('--metrics-out',
                                             args.metrics_out)):
        if path is None:
            continue
        if flag == '--out' and osp.isdir(path):
            continue  # segmentation's folder of maps: add_result_dump
        check_output_file(path, flag, inputs, args.overwrite)
        if flag == '--metrics-out':  # --out: checked by add_result_dump
            check_writable_file(path, flag)


def check_output_folders(args, cfg, task: str) -> None:
    """Folders the run writes images into by file name (segmentation
    ``--out``, ``--show-dir``) are never a dataset's folder, and
    segmentation ``--out`` replaces no prediction maps there, unless
    ``--overwrite`` is given: the maps are named after the images, so a
    dataset's annotation folder would lose its ground truth."""
    if args.overwrite:
        return
    folders = [('--show-dir', args.show_dir)]
    if task == 'mmseg':
        folders.append(('--out', args.out))
    for flag, folder in folders:
        if not folder or '://' in folder:
            continue
        data = dataset_folder_holding(folder, cfg)
        if data is not None:
            raise LaunchError(
                f'{flag} {folder} is a folder of the dataset ({data}): '
                'images written there by name could replace its files; '
                'choose another folder (or pass --overwrite if you mean it)')
    if task == 'mmseg' and args.out and osp.isdir(args.out):
        existing = [
            e.name for e in os.scandir(args.out)
            if e.name.lower().endswith('.png')
        ]
        if existing:
            raise LaunchError(
                f'--out {args.out} already holds {len(existing)} PNG '
                f'file(s) (e.g. {sorted(existing)[0]}) that prediction maps '
                'of the same names would replace; pass --overwrite to '
                'replace them, or choose an empty or new folder')


def check_checkpoint_task(cfg, checkpoint):
    """Refuse a local checkpoint of another task (a segmentation file for a
    detection config) before the runner logs the config and builds the
    model; ``load_strict=False`` loads what fits and skips this."""
    if '://' in checkpoint or cfg.get('load_strict') is False:
        return
    from smt_mm.checkpoint import read_checkpoint
    from smt_mm.models.utils import check_checkpoint_parts
    check_checkpoint_parts(cfg.model, read_checkpoint(checkpoint), checkpoint)


def main(argv=None):
    args = parse_args(argv)
    if args.interval < 1:
        raise LaunchError(f'--interval must be at least 1, got '
                          f'{args.interval}')
    if '://' not in args.checkpoint:
        check_input_file(args.checkpoint, 'checkpoint', 'checkpoint file')
    check_outputs(args)
    cfg = load_config(args.config, args.cfg_options)
    task = task_of(cfg)
    set_work_dir(cfg, args.config, args.work_dir)
    check_path_length(cfg.work_dir, 'work dir')
    check_output_folders(args, cfg, task)
    cfg.load_from = args.checkpoint
    drop_training(cfg)
    check_run_settings(cfg)
    check_checkpoint_task(cfg, args.checkpoint)
    check_datasets(cfg, 'test_dataloader')
    if args.show or args.show_dir:
        enable_visualization(cfg, task, args.show_dir, args.show,
                             args.wait_time, args.interval)
    if args.tta:
        enable_tta(cfg)
    dump = add_result_dump(cfg, task, args.out) if args.out else None
    setup_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    if dump is not None:
        runner.test_evaluator.metrics.append(dump)
    try:
        metrics = runner.test()
    except AssertionError as err:  # e.g. an image that does not decode
        message = data_error_message(err)
        if message is None:
            raise
        raise LaunchError(message) from None
    if args.metrics_out:
        with open(args.metrics_out, 'w') as f:
            json.dump(metrics, f, indent=2, default=float)
    return metrics


if __name__ == '__main__':
    run_cli(main)
