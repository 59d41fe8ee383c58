# Copyright (c) SMT-MM contributors. All rights reserved.
"""A progress line per step of a multi-step job, from mmengine's log lines.

Each step runs as a subprocess (:class:`Steps`); its output goes to a log
file, and the screen shows one line: a bar with iterations, ETA and loss
while training (:class:`TrainWatcher`), batches and the bbox mAP@0.5 while
testing (:class:`TestWatcher`). ``tools/quickstart.py`` is built on it.
"""
import os
import queue
import re
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional

# mmengine's progress lines: "Epoch(train)  [3][20/60]  ... loss: 1.23",
# "Epoch(test) [5/15] ...", the metrics "Epoch(test) [15/15]
# coco/bbox_mAP: ... coco/bbox_mAP_50: ..."
TRAIN_LINE = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]')
TEST_LINE = re.compile(r'Epoch\(test\)\s+\[\s*(\d+)/(\d+)\]')
LOSS = re.compile(r'\sloss: ([0-9.]+)')
BBOX_MAP50 = re.compile(r'coco/bbox_mAP_50: ([0-9.]+)')
BAR_WIDTH = 24


def fmt_time(seconds: float) -> str:
    """``seconds`` as minutes:seconds."""
    seconds = int(round(seconds))
    return f'{seconds // 60}:{seconds % 60:02d}'


def bar(done: int, total: int) -> str:
    """A text bar of ``done`` out of ``total``."""
    filled = BAR_WIDTH * done // total if total else 0
    return '[' + '#' * filled + '.' * (BAR_WIDTH - filled) + ']'


class Progress:
    """One updating line on a terminal; elsewhere (CI logs) a line per
    tenth of the work, so a log file stays short.

    Args:
        stream: where to write; stdout by default.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last_tenth = None
        self.width = 0

    def show(self,
             text: str,
             done: Optional[int] = None,
             total: Optional[int] = None) -> None:
        """Show ``text`` as the current state, ``done`` of ``total``."""
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

    def end(self, text: str) -> None:
        """Close the line with ``text``; the next show starts a new one."""
        if self.tty:
            self.show(text)
            self.stream.write('\n')
        elif text:
            self.stream.write(text + '\n')
        self.stream.flush()
        self.width = 0
        self.last_tenth = None


class TrainWatcher:
    """The training step's line: iterations, epoch, ETA (from the pace
    since the first logged iterations), latest loss.

    Args:
        max_epochs: the epochs the run trains for.
    """

    def __init__(self, max_epochs: int):
        self.max_epochs = max_epochs
        self.start = None  # (time, iteration) of the first progress line
        self.done = self.total = 0
        self.loss = None

    def update(self, line: str) -> bool:
        """Read one output line; whether it was a training line."""
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

    def text(self) -> str:
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
        if not self.total:
            return 'loading the checkpoint...'
        known = '' if self.map50 is None else \
            f'  bbox mAP@0.5 {self.map50:.3f}'
        return (f'{bar(self.done, self.total)} {self.done}/{self.total} '
                f'batches{known}')


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
    file, the screen showing a progress line.

    Args:
        log_path: the file every step's output is appended to.
        cwd: where the steps run.
        verbose: print the steps' output instead of progress lines.
        total: the number of steps, for the ``[n/total]`` heads.
    """

    def __init__(self,
                 log_path: str,
                 cwd: str,
                 verbose: bool = False,
                 total: int = 4):
        self.log_path = log_path
        self.cwd = cwd
        self.verbose = verbose
        self.total = total
        self.number = 0
        self.progress = Progress()

    def head(self, name: str) -> str:
        """The next step's ``[n/total] name`` head."""
        self.number += 1
        return f'[{self.number}/{self.total}] {name:<9}'

    def note(self, name: str, text: str) -> None:
        """A step that needs no work, e.g. data already there."""
        self.progress.end(f'{self.head(name)} {text}')

    def run(self,
            name: str,
            args: List[str],
            watcher=None,
            summary: Optional[Callable[[List[str]], str]] = None) -> List[str]:
        """Run the command ``args`` as step ``name``.

        Args:
            watcher: a :class:`TrainWatcher`-like object turning output
                lines into the progress line.
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
            self.progress.end(f'{head} failed after {took}')
            raise StepFailed(name, code, failure_detail(lines, code),
                             self.log_path)
        text = summary(lines) if summary else ''
        state = watcher.text() if watcher is not None and not text else text
        self.progress.end(f'{head} {state}  ({took})')
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
        if watcher is not None and not self.verbose:
            self.progress.show(f'{head} {watcher.text()}')
        lines = []
        for line in output_lines(proc):
            log.write(line)
            lines.append(line.rstrip('\n'))
            if self.verbose:
                sys.stdout.write(line)
            elif watcher is not None and watcher.update(line):
                self.progress.show(f'{head} {watcher.text()}', watcher.done,
                                   watcher.total)
        return proc.wait(), lines
