# Copyright (c) SMT-MM contributors. All rights reserved.
"""Train any SMT-MM config (mmdet, mmseg or mmpretrain).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [auto|PATH]] [--overwrite] [--cfg-options k=v ...]
        [--launcher pytorch]
"""
import argparse

import smt_mm  # noqa: F401  (registers SMT and SMTRunner)
from smt_mm.checks.dataset import check_datasets, data_error_message
from smt_mm.checks.run import check_run_settings
from smt_mm.errors import LaunchError
from smt_mm.launch.cli import (USER_FIXABLE_ERRNOS, add_common_args,
                               describe_os_error, parse_launcher_args, run_cli)
from smt_mm.launch.config import (enable_amp, enable_auto_scale_lr,
                                  load_config, set_work_dir, task_of)
from smt_mm.launch.distributed import setup_distributed
from smt_mm.launch.resume import protect_earlier_run, set_resume
from smt_mm.launch.runner import build_runner
from smt_mm.launch.workdir import (check_path_length, is_first_process,
                                   lock_work_dir)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by actual / base batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from PATH, or from the latest checkpoint of the work '
        'dir when no PATH is given')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='start a new run in a work dir that holds checkpoints of an '
        'earlier run (they are replaced as new ones are saved)')
    add_common_args(parser)
    return parse_launcher_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    task_of(cfg)
    set_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    check_run_settings(cfg)
    check_path_length(cfg.work_dir, 'work dir')
    check_datasets(cfg, 'train_dataloader',
                   *(['val_dataloader'] if cfg.get('val_cfg') else []))
    if is_first_process(args.launcher):
        # one run per work dir, held until this process ends (the first
        # thing written: a run refused above leaves no work dir behind)
        lock_work_dir(cfg.work_dir)
    protect_earlier_run(cfg, args.resume, args.overwrite)
    set_resume(cfg, args.resume)
    setup_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    try:
        runner.train()
    except OSError as err:
        if err.errno not in USER_FIXABLE_ERRNOS:
            raise
        # e.g. the disk filled up while a checkpoint was saved: the
        # checkpoints saved before are complete (saves are atomic)
        raise LaunchError(f'training stopped, writing failed: '
                          f'{describe_os_error(err)}; the checkpoints '
                          f'already in {cfg.work_dir} are complete: fix '
                          'this and continue with --resume') from None
    except AssertionError as err:  # e.g. an image that does not decode
        message = data_error_message(err)
        if message is None:
            raise
        raise LaunchError(message) from None


if __name__ == '__main__':
    run_cli(main)
