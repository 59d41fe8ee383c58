# Copyright (c) SMT-MM contributors. All rights reserved.
"""The main job on an embedded default: no download, CPU, about 10 minutes.

1. writes the synthetic shapes dataset (tools/misc/make_synthetic_data.py),
2. trains Mask R-CNN + SMT-T on it with tools/train.py (no validation
   during training: the next step is the one evaluation),
3. evaluates the saved checkpoint on the validation set with tools/test.py
   (mmdet CocoMetric),
4. draws the predictions on a validation image with tools/demo.py,
5. prints the metrics beside the bar of the detection issue (bbox and segm
   mAP@0.5 >= 0.5) and the range measured on 2-core CPUs; with --strict,
   exits non-zero when they are below the bar.

The screen shows one progress line per step (iterations, ETA, loss, mAP
once known); everything the steps print goes to WORK_DIR/quickstart.log,
and mmengine writes its own log under WORK_DIR/<time>/.

    python tools/quickstart.py [--work-dir DIR] [--nproc N] [--strict]
        [--resume | --overwrite] [--verbose] [--cfg-options k=v ...]
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/det/smt_t_maskrcnn_synth-quickstart.py'
DATA = 'data/synthetic_coco'
LOG_NAME = 'quickstart.log'
# The bar of the detection issue, and what runs of this script gave on
# 2-core CPU machines (bbox mAP@0.5 0.713 on a quiet machine, 0.728 and
# 0.744 on others: float32 rounding moves the training trajectory).
BARS = {'coco/bbox_mAP_50': 0.5, 'coco/segm_mAP_50': 0.5}
MEASURED = {'coco/bbox_mAP_50': (0.71, 0.75)}
# iterations between progress updates (mmengine's logger interval)
TRAIN_LOG_INTERVAL = 10
BAR_WIDTH = 24

# mmengine's progress lines: "Epoch(train)  [3][20/60]  ... loss: 1.23",
# "Epoch(test) [5/15] ...", the metrics "Epoch(test) [15/15]
# coco/bbox_mAP: ... coco/bbox_mAP_50: ..."
TRAIN_LINE = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]')
TEST_LINE = re.compile(r'Epoch\(test\)\s+\[\s*(\d+)/(\d+)\]')
LOSS = re.compile(r'\sloss: ([0-9.]+)')
BBOX_MAP50 = re.compile(r'coco/bbox_mAP_50: ([0-9.]+)')


def fmt_time(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 60}:{seconds % 60:02d}'


class Progress:
    """One updating line on a terminal; elsewhere (CI logs) a line per
    tenth of the work, so a log file stays short."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last_tenth = None
        self.width = 0

    def show(self, text, done=None, total=None):
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write('\r' + text + ' ' * pad)
            self.width = len(text)
            self.stream.flush()
            return
        tenth = None if not total else 10 * done // total
        if tenth is not None and tenth == self.last_tenth:
            return
        self.last_tenth = tenth
        self.stream.write(text + '\n')
        self.stream.flush()

    def end(self, text):
        if self.tty:
            self.show(text)
            self.stream.write('\n')
        elif text:
            self.stream.write(text + '\n')
        self.stream.flush()
        self.width = 0
        self.last_tenth = None


def bar(done, total):
    filled = BAR_WIDTH * done // total if total else 0
    return '[' + '#' * filled + '.' * (BAR_WIDTH - filled) + ']'


class TrainWatcher:
    """The training step's line: iterations, epoch, ETA (from the pace
    since the first logged iterations), smoothed loss."""

    def __init__(self, max_epochs):
        self.max_epochs = max_epochs
        self.start = None  # (time, iteration) of the first progress line
        self.done = self.total = 0
        self.loss = None

    def update(self, line):
        match = TRAIN_LINE.search(line)
        if not match:
            return False
        epoch, it, per_epoch = map(int, match.groups())
        self.total = self.max_epochs * per_epoch
        self.done = (epoch - 1) * per_epoch + it
        loss = LOSS.search(line)
        if loss:
            self.loss = float(loss.group(1))
        now = time.monotonic()
        if self.start is None:
            self.start = (now, self.done)
        self.epoch = epoch
        self.pace = None
        if self.done > self.start[1]:
            self.pace = (now - self.start[0]) / (self.done - self.start[1])
        return True

    def text(self):
        if not self.total:
            return 'building the model, checking the data...'
        eta = '?' if self.pace is None else fmt_time(self.pace *
                                                     (self.total - self.done))
        loss = '' if self.loss is None else f'  loss {self.loss:.3f}'
        return (f'{bar(self.done, self.total)} {self.done}/{self.total} it'
                f'  epoch {self.epoch}/{self.max_epochs}  ETA {eta}{loss}')


class TestWatcher:
    """The evaluation step's line: batches, then the bbox mAP@0.5."""

    def __init__(self):
        self.done = self.total = 0
        self.map50 = None

    def update(self, line):
        found = BBOX_MAP50.search(line)
        if found:
            self.map50 = float(found.group(1))
        match = TEST_LINE.search(line)
        if match:
            self.done, self.total = map(int, match.groups())
        return bool(found or match)

    def text(self):
        if not self.total:
            return 'loading the checkpoint...'
        known = '' if self.map50 is None else \
            f'  bbox mAP@0.5 {self.map50:.3f}'
        return (f'{bar(self.done, self.total)} {self.done}/{self.total} '
                f'batches{known}')


def failure_detail(lines, code):
    """What to show of a failed step: its ``error:`` line, the signal
    that stopped it, or the end of its output (long lines cut)."""
    errors = [ln for ln in lines if ln.startswith('error:')]
    if errors:
        return errors[-1]
    if code < 0:
        return (f'stopped by signal {-code} (killed from outside, or out of '
                'memory)')
    tail = [
        ln if len(ln) <= 160 else ln[:157] + '...' for ln in lines
        if ln.strip()
    ][-5:]
    return '\n'.join(tail)


def output_lines(proc, grace=2.0):
    """The lines ``proc`` prints, until it has exited and nothing came
    for ``grace`` seconds: a data-loader worker left behind by a killed
    step keeps the pipe open, which must not hang the quickstart."""
    import queue
    import threading
    lines = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    quiet_since = None
    while True:
        try:
            yield lines.get(timeout=0.2)
            quiet_since = None
        except queue.Empty:
            if proc.poll() is None:
                continue
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > grace:
                return


class Steps:
    """Runs each step as a subprocess, its output appended to the log
    file, the screen showing a progress line."""

    def __init__(self, log_path, verbose=False, total=4):
        self.log_path = log_path
        self.verbose = verbose
        self.total = total
        self.number = 0
        self.progress = Progress()

    def head(self, name):
        self.number += 1
        return f'[{self.number}/{self.total}] {name:<9}'

    def note(self, name, text):
        """A step that needs no work, e.g. data already there."""
        self.progress.end(f'{self.head(name)} {text}')

    def run(self, name, args, watcher=None, summary=None):
        """Run ``args``; exit with the step's error line and the log's
        path when it fails. Returns the step's output lines."""
        head = self.head(name)
        started = time.monotonic()
        lines = []
        with open(self.log_path, 'a') as log:
            log.write(f'\n+ {" ".join(args)}\n')
            log.flush()
            env = dict(os.environ, PYTHONUNBUFFERED='1')
            proc = subprocess.Popen(
                args,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors='replace',
                env=env)
            if watcher is not None and not self.verbose:
                self.progress.show(f'{head} {watcher.text()}')
            for line in output_lines(proc):
                log.write(line)
                lines.append(line.rstrip('\n'))
                if self.verbose:
                    sys.stdout.write(line)
                elif watcher is not None and watcher.update(line):
                    self.progress.show(f'{head} {watcher.text()}',
                                       watcher.done, watcher.total)
            code = proc.wait()
        took = fmt_time(time.monotonic() - started)
        if code:
            self.progress.end(f'{head} failed after {took}')
            detail = failure_detail(lines, code)
            sys.exit(f'{detail}\nquickstart: {name} failed (exit status '
                     f'{code}); its full output is in {self.log_path}')
        text = summary(lines) if summary else ''
        state = watcher.text() if watcher is not None and not text else text
        self.progress.end(f'{head} {state}  ({took})')
        return lines


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
    # results of this run's training replace the earlier evaluation
    again = ['--overwrite'] if args.overwrite or args.resume else []
    os.makedirs(osp.join(REPO, work_dir), exist_ok=True)
    log_path = osp.join(work_dir, LOG_NAME)
    with open(osp.join(REPO, log_path), 'w') as log:
        log.write(f'SMT-MM quickstart, {time.strftime("%Y-%m-%d %H:%M")}\n')
    print('SMT-MM quickstart: Mask R-CNN + SMT-T trained from scratch on '
          'synthetic shapes (about 10 minutes on 2 CPU cores)')
    print(f'full output: {log_path}')
    steps = Steps(osp.join(REPO, log_path), args.verbose)

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

    with open(osp.join(REPO, metrics_file)) as f:
        metrics = json.load(f)
    print_results(metrics, checkpoint, mmengine_log(work_dir), log_path)
    failed = [key for key, bar in BARS.items() if metrics[key] < bar]
    if failed and args.strict:
        sys.exit(f'quickstart: {", ".join(failed)} below the bar')


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
