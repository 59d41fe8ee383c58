# Copyright (c) SMT-MM contributors. All rights reserved.
"""Mask R-CNN + SMT-T from scratch on synthetic shapes: CPU, no download.

1. writes the synthetic shapes dataset (tools/misc/make_synthetic_data.py),
2. trains Mask R-CNN + SMT-T on it with tools/train.py (no validation
   during training: the next step is the one evaluation),
3. evaluates the saved checkpoint on the validation set with tools/test.py
   (mmdet CocoMetric),
4. draws the predictions on a validation image with tools/demo.py,
5. prints the metrics beside the quickstart's bar (bbox and segm
   mAP@0.5 >= 0.5) and the range measured on 2-core CPUs; with --strict,
   exits non-zero when they are below the bar.

On a terminal each step shows a progress bar (iterations, ETA, loss, mAP
once known), then one closing line; elsewhere (CI logs) only the closing
lines are printed. Everything the steps print goes to
WORK_DIR/quickstart.log, and mmengine writes its own log under
WORK_DIR/<time>/.

    python tools/quickstart.py [--work-dir DIR] [--nproc N] [--strict]
        [--resume | --overwrite] [--verbose] [--cfg-options k=v ...]
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import time

from smt_mm.launch.progress import StepFailed, Steps, TestWatcher, TrainWatcher

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/det/smt_t_maskrcnn_synth-quickstart.py'
DATA = 'data/synthetic_coco'
LOG_NAME = 'quickstart.log'
# The quickstart's bar, and what runs of this script gave on a
# 2-core CPU machine with seeds 0, 1 and 2 (bbox mAP@0.5 0.620, 0.649,
# 0.544: the seed and float32 rounding move the training trajectory).
BARS = {'coco/bbox_mAP_50': 0.5, 'coco/segm_mAP_50': 0.5}
MEASURED = {'coco/bbox_mAP_50': (0.54, 0.65)}
# iterations between progress updates (mmengine's logger interval)
TRAIN_LOG_INTERVAL = 10


def busiest_val_image():
    """The validation image with the most objects, for the demo."""
    with open(osp.join(REPO, DATA, 'annotations', 'instances_val.json')) as f:
        coco = json.load(f)
    counts = {}
    for ann in coco['annotations']:
        counts[ann['image_id']] = counts.get(ann['image_id'], 0) + 1
    image = max(
        coco['images'], key=lambda im: (counts.get(im['id'], 0), -im['id']))
    return osp.join(DATA, 'val', image['file_name'])


def max_epochs(cfg_options):
    """The number of epochs the run trains for (the config's, or a
    ``train_cfg.max_epochs=`` option's)."""
    for option in cfg_options:
        if option.startswith('train_cfg.max_epochs='):
            return int(option.split('=', 1)[1])
    import warnings
    with warnings.catch_warnings():  # mmengine's imports warn (pkg_resources)
        warnings.simplefilter('ignore')
        from mmengine.config import Config
        return Config.fromfile(osp.join(REPO, CONFIG)).train_cfg.max_epochs


def earlier_run(work_dir):
    """Whether ``work_dir`` holds checkpoints of an earlier run."""
    folder = osp.join(REPO, work_dir)
    return bool(glob.glob(osp.join(glob.escape(folder), '*.pth'))) or \
        osp.isfile(osp.join(folder, 'last_checkpoint'))


def mmengine_log(work_dir):
    """The newest log file mmengine wrote in ``work_dir``."""
    logs = glob.glob(osp.join(REPO, work_dir, '*', '*.log'))
    return osp.relpath(max(logs, key=osp.getmtime), REPO) if logs else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument(
        '--nproc',
        type=int,
        default=1,
        help='train with tools/dist_train.sh on N processes')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='fail when a metric is below its bar')
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        '--overwrite',
        action='store_true',
        help='replace the results of an earlier quickstart in --work-dir')
    again.add_argument(
        '--resume',
        action='store_true',
        help='continue the training of an earlier quickstart in --work-dir '
        'from its latest checkpoint, then evaluate and draw again')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='print everything the steps print (it always goes to '
        f'WORK_DIR/{LOG_NAME})')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='passed on to train and test')
    args = parser.parse_args(argv)
    if args.nproc < 1:
        parser.error(f'--nproc must be a positive integer, got {args.nproc}')
    return args


def train_command(args, py):
    """tools/train.py (or dist_train.sh) without validation: the
    evaluation step after it evaluates the saved checkpoint once."""
    again = ['--overwrite'] if args.overwrite else []
    again += ['--resume'] if args.resume else []
    options = [
        'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None',
        f'default_hooks.logger.interval={TRAIN_LOG_INTERVAL}',
        *args.cfg_options
    ]
    if args.nproc > 1:
        # Same global batch as one process: split the 4 images per step.
        os.environ['PYTHON'] = py
        return [
            'bash', 'tools/dist_train.sh', CONFIG,
            str(args.nproc), '--work-dir', args.work_dir, *again,
            '--cfg-options', f'train_dataloader.batch_size={4 // args.nproc}',
            *options
        ]
    return [
        py, 'tools/train.py', CONFIG, '--work-dir', args.work_dir, *again,
        '--cfg-options', *options
    ]


def main(argv=None):
    args = parse_args(argv)
    py = sys.executable
    work_dir = args.work_dir
    if earlier_run(work_dir) and not (args.overwrite or args.resume):
        sys.exit(f'quickstart: {work_dir} holds an earlier quickstart run; '
                 'pass --resume to continue its training, --overwrite to '
                 'start over, or choose another --work-dir')
    os.makedirs(osp.join(REPO, work_dir), exist_ok=True)
    log_path = osp.join(work_dir, LOG_NAME)
    with open(osp.join(REPO, log_path), 'w') as log:
        log.write(f'SMT-MM quickstart, {time.strftime("%Y-%m-%d %H:%M")}\n')
    print('SMT-MM quickstart: Mask R-CNN + SMT-T trained from scratch on '
          'synthetic shapes (about 5 minutes on 2 quiet CPU cores; the ETA '
          'follows this machine)')
    print(f'full output: {log_path}')
    steps = Steps(osp.join(REPO, log_path), REPO, args.verbose)
    try:
        checkpoint, metrics_file = run_steps(steps, args, py)
    except StepFailed as failed:
        sys.exit(f'{failed.detail}\nquickstart: {failed}')
    with open(osp.join(REPO, metrics_file)) as f:
        metrics = json.load(f)
    print_results(metrics, checkpoint, mmengine_log(work_dir), log_path)
    failed = [key for key, bar in BARS.items() if metrics[key] < bar]
    if failed and args.strict:
        sys.exit(f'quickstart: {", ".join(failed)} below the bar')


def run_steps(steps, args, py):
    """Data, training, evaluation and demo, as progress lines; returns the
    checkpoint and the metrics file."""
    work_dir = args.work_dir
    # results of this run's training replace the earlier evaluation
    again = ['--overwrite'] if args.overwrite or args.resume else []

    if osp.isfile(osp.join(REPO, DATA, 'annotations', 'instances_val.json')):
        steps.note('data', f'{DATA} (written by an earlier run)')
    else:
        steps.run(
            'data', [py, 'tools/misc/make_synthetic_data.py', 'coco', DATA],
            summary=lambda lines: lines[-1] if lines else DATA)
    steps.run('train', train_command(args, py),
              TrainWatcher(max_epochs(args.cfg_options)))
    with open(osp.join(REPO, work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    test_options = ['default_hooks.logger.interval=1', *args.cfg_options]
    steps.run('evaluate', [
        py, 'tools/test.py', CONFIG, checkpoint, '--work-dir',
        osp.join(work_dir, 'test'), '--metrics-out', metrics_file, *again,
        '--cfg-options', *test_options
    ], TestWatcher())
    demo = osp.join(work_dir, 'demo.png')
    steps.run(
        'demo', [
            py, 'tools/demo.py',
            busiest_val_image(), CONFIG, checkpoint, '--out', demo, *again
        ],
        summary=lambda lines: lines[-1] if lines else demo)
    return checkpoint, metrics_file


def print_results(metrics, checkpoint, train_log, log_path):
    print('\nResults (synthetic validation split, 60 images):')
    for key, bar in BARS.items():
        verdict = 'ok' if metrics[key] >= bar else 'NOT MET'
        seen = MEASURED.get(key)
        seen = f'; 2-core CPU runs gave {seen[0]:.2f}-{seen[1]:.2f}' \
            if seen else ''
        print(f'  {key:<18} {metrics[key]:.3f}  (bar {bar}: {verdict}'
              f'{seen})')
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        print(f'  {key:<18} {metrics[key]:.3f}')
    print(f'checkpoint: {checkpoint}')
    if train_log:
        print(f'training log: {train_log}')
    print(f'all output: {log_path}')


if __name__ == '__main__':
    main()
