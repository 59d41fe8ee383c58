# Copyright (c) SMT-MM contributors. All rights reserved.
"""A progress bar per step of a multi-step job, from mmengine's log lines.

Each step runs as a subprocess (:class:`Steps`); its output goes to a log
file, and the screen shows one line: rich's progress bar and ETA with the
iterations, epoch and loss while training (:class:`TrainWatcher`), batches
and the bbox mAP@0.5 while testing (:class:`TestWatcher`); then one closing
line per step. Where stdout is no terminal (CI logs), only the closing lines
are printed. ``tools/quickstart.py`` is built on it.
"""
import datetime
import os
import queue
import re
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

# mmengine's progress lines: "Epoch(train)  [3][20/60]  ... loss: 1.23",
# "Epoch(test) [5/15] ...", the metrics "Epoch(test) [15/15]
# coco/bbox_mAP: ... coco/bbox_mAP_50: ..."; the bar needs the iteration
# counts, the closing line the loss and mAP
TRAIN_LINE = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]')
TEST_LINE = re.compile(r'Epoch\(test\)\s+\[\s*(\d+)/(\d+)\]')
LOSS = re.compile(r'\sloss: ([0-9.]+)')
BBOX_MAP50 = re.compile(r'coco/bbox_mAP_50: ([0-9.]+)')
BAR_WIDTH = 24


def fmt_time(seconds: float) -> str:
    """``seconds`` as hours:minutes:seconds."""
    return str(datetime.timedelta(seconds=round(seconds)))


def screen() -> Console:
    """The console the steps show on: stdout (looked up on each write),
    text printed as given (no markup, highlighting or wrapping)."""
    return Console(markup=False, highlight=False, soft_wrap=True)


def progress_bar(console: Console, head: str, show: bool) -> Progress:
    """A one-line rich progress bar headed ``head``, erased when it stops;
    drawn only if ``show`` and ``console`` is a terminal."""
    return Progress(
        TextColumn(head, markup=False),
        BarColumn(bar_width=BAR_WIDTH),
        TextColumn('{task.description}', markup=False),
        TextColumn('ETA', markup=False),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not (show and console.is_terminal))


class TrainWatcher:
    """The training step's progress: iterations, epoch, latest loss.

    Args:
        max_epochs: the epochs the run trains for.
    """

    def __init__(self, max_epochs: int):
        self.max_epochs = max_epochs
        self.done = self.total = self.epoch = 0
        self.loss = None

    def update(self, line: str) -> bool:
        """Read one output line; whether it was a training line."""
        match = TRAIN_LINE.search(line)
        if not match:
            return False
        self.epoch, it, per_epoch = map(int, match.groups())
        self.total = self.max_epochs * per_epoch
        self.done = (self.epoch - 1) * per_epoch + it
        loss = LOSS.search(line)
        if loss:
            self.loss = float(loss.group(1))
        return True

    def text(self) -> str:
        """The state next to the bar, and in the step's closing line."""
        if not self.total:
            return 'building the model, checking the data...'
        loss = '' if self.loss is None else f'  loss {self.loss:.3f}'
        return (f'{self.done}/{self.total} it  epoch {self.epoch}/'
                f'{self.max_epochs}{loss}')


class TestWatcher:
    """The evaluation step's line: batches, then the bbox mAP@0.5."""

    def __init__(self):
        self.done = self.total = 0
        self.map50 = None

    def update(self, line: str) -> bool:
        """Read one output line; whether it was a test or metrics line."""
        found = BBOX_MAP50.search(line)
        if found:
            self.map50 = float(found.group(1))
        match = TEST_LINE.search(line)
        if match:
            self.done, self.total = map(int, match.groups())
        return bool(found or match)

    def text(self) -> str:
        """The state next to the bar, and in the step's closing line."""
        if not self.total:
            return 'loading the checkpoint...'
        known = '' if self.map50 is None else \
            f'  bbox mAP@0.5 {self.map50:.3f}'
        return f'{self.done}/{self.total} batches{known}'


def failure_detail(lines: List[str], code: int) -> str:
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


def output_lines(proc: subprocess.Popen, grace: float = 2.0) -> Iterator[str]:
    """The lines ``proc`` prints, until it has exited and nothing came
    for ``grace`` seconds: a data-loader worker left behind by a killed
    step keeps the pipe open, which must not hang the caller."""
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


class StepFailed(Exception):
    """A step exited non-zero.

    Args:
        name: the step's name.
        code: its exit status (negative: the signal that stopped it).
        detail: what :func:`failure_detail` shows of its output.
        log_path: the file holding its full output.
    """

    def __init__(self, name: str, code: int, detail: str, log_path: str):
        super().__init__(f'{name} failed (exit status {code}); its full '
                         f'output is in {log_path}')
        self.name, self.code, self.detail = name, code, detail
        self.log_path = log_path


class Steps:
    """Runs each step as a subprocess, its output appended to the log
    file, the screen showing a progress bar and a closing line per step.

    Args:
        log_path: the file every step's output is appended to.
        cwd: where the steps run.
        verbose: print the steps' output instead of progress bars.
        total: the number of steps, for the ``[n/total]`` heads.
        console: where to show them; stdout by default (:func:`screen`).
    """

    def __init__(self,
                 log_path: str,
                 cwd: str,
                 verbose: bool = False,
                 total: int = 4,
                 console: Optional[Console] = None):
        self.log_path = log_path
        self.cwd = cwd
        self.verbose = verbose
        self.total = total
        self.number = 0
        self.console = console or screen()

    def head(self, name: str) -> str:
        """The next step's ``[n/total] name`` head."""
        self.number += 1
        return f'[{self.number}/{self.total}] {name:<9}'

    def note(self, name: str, text: str) -> None:
        """A step that needs no work, e.g. data already there."""
        self.console.print(f'{self.head(name)} {text}')

    def run(self,
            name: str,
            args: List[str],
            watcher=None,
            summary: Optional[Callable[[List[str]], str]] = None) -> List[str]:
        """Run the command ``args`` as step ``name``.

        Args:
            watcher: a :class:`TrainWatcher`-like object turning output
                lines into the progress bar's state.
            summary: the step's closing text from its output lines;
                default: the watcher's last text.

        Returns:
            The step's output lines.

        Raises:
            StepFailed: the step exited non-zero.
        """
        head = self.head(name)
        started = time.monotonic()
        with open(self.log_path, 'a', buffering=1) as log:  # line by line
            code, lines = self._follow(head, args, log, watcher)
        took = fmt_time(time.monotonic() - started)
        if code:
            self.console.print(f'{head} failed after {took}')
            raise StepFailed(name, code, failure_detail(lines, code),
                             self.log_path)
        text = summary(lines) if summary else ''
        state = watcher.text() if watcher is not None and not text else text
        self.console.print(f'{head} {state}  ({took})')
        return lines

    def _follow(self, head, args, log, watcher):
        """Run ``args``, logging and showing its output; returns its exit
        status and output lines."""
        log.write(f'\n+ {" ".join(args)}\n')
        log.flush()
        proc = subprocess.Popen(
            args,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors='replace',
            env=dict(os.environ, PYTHONUNBUFFERED='1'))
        watch = watcher is not None and not self.verbose
        lines = []
        with progress_bar(self.console, head, watch) as bar:
            task = bar.add_task(watcher.text() if watch else '', total=None)
            for line in output_lines(proc):
                log.write(line)
                lines.append(line.rstrip('\n'))
                if self.verbose:
                    sys.stdout.write(line)
                elif watch and watcher.update(line):
                    bar.update(
                        task,
                        completed=watcher.done,
                        total=watcher.total,
                        description=watcher.text())
        return proc.wait(), lines
