# Copyright (c) SMT-MM contributors. All rights reserved.
"""Train any SMT-MM config (mmdet, mmseg or mmpretrain).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [auto|PATH]] [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import smt_mm  # noqa: E402,F401  (registers SMT, applies torch compat)
from smt_mm.utils import launch  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by actual / base batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from PATH, or from the latest checkpoint of the work '
        'dir when no PATH is given')
    launch.add_common_args(parser)
    return launch.parse_launcher_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = launch.load_config(args.config, args.cfg_options)
    launch.task_of(cfg)
    launch.set_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        launch.enable_amp(cfg)
    if args.auto_scale_lr:
        launch.enable_auto_scale_lr(cfg)
    launch.set_resume(cfg, args.resume)
    launch.check_datasets(cfg, 'train_dataloader', *(
        ['val_dataloader'] if cfg.get('val_cfg') else []))
    launch.setup_distributed(cfg, args.launcher)
    runner = launch.build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    launch.run_cli(main)
