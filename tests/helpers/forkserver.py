# Copyright (c) SMT-MM contributors. All rights reserved.
"""Run ``python tools/X.py ...`` command lines without paying for a fresh
Python each time.

A fresh interpreter imports torch, mmcv, mmengine, mmdet, mmseg, mmpretrain
and smt_mm before a tool does anything (seconds on a small CPU machine, and
the test suite runs about a hundred tool command lines). One server process
imports them once and runs no tensor code (so forking it is safe for
OpenMP); each command line then runs in a process forked from it: a process
of its own (its exit status, its stdout/stderr files, its signals, its file
locks released when it ends), with the test's cwd, environment and umask.

The server is started with the test process's environment, and started
again when that changes in what a fresh Python reads at start-up or import
(``PYTHONPATH``, a ``sitecustomize``, ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``);
only the variables read when a tool runs may differ. A command line given
such a variable of its own (``run_tool(..., env=...)``) runs in a fresh
Python. Other
programs, ``-c`` code and scripts outside tools/ run in a fresh interpreter
as before (``can_fork``);
``SMT_TESTS_FRESH_PYTHON=1`` runs every command line that way.
"""
import json
import os
import subprocess
import sys
import tempfile

# Environment variables the package and the tools read when they run, not
# when they are imported: a command line may differ from the server's
# environment in these and still run forked.
READ_AT_RUN_TIME = ('PYTHONUNBUFFERED', 'PYTEST_', 'SMT_MM_', 'LOCAL_RANK',
                    'RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
                    'SLURM_')

# the repository's tools/ folder
TOOLS = os.path.join(
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
    'tools') + os.sep
_SERVER = None
_SERVER_ENV = None


def can_fork(args, cwd) -> bool:
    """Whether ``args`` is ``python tools/....py ...`` or ``python -m
    smt_mm....`` of this interpreter: command lines that import smt_mm
    first anyway, so the server's imports change nothing for them (an
    upstream package's script, which must not see smt_mm imported, runs
    in a fresh Python)."""
    if os.environ.get('SMT_TESTS_FRESH_PYTHON') == '1':
        return False
    if len(args) < 3 or str(args[0]) != sys.executable:
        return False
    first, second = str(args[1]), str(args[2])
    if first == '-m':
        return second.split('.')[0] == 'smt_mm'
    script = os.path.realpath(os.path.join(str(cwd), first))
    return first.endswith('.py') and script.startswith(TOOLS)


def same_start(env, started) -> bool:
    """Whether a fresh Python with ``env`` starts as one with ``started``
    did: they differ only in variables read when a tool runs."""
    changed = {
        k
        for k in set(env) | set(started) if env.get(k) != started.get(k)
    }
    return all(k.startswith(READ_AT_RUN_TIME) for k in changed)


def _server(env):
    """The server for ``env``, (re)started when there is none for it."""
    global _SERVER, _SERVER_ENV
    if _SERVER is not None and _SERVER.poll() is None and same_start(
            env, _SERVER_ENV):
        return _SERVER
    if _SERVER is not None and _SERVER.poll() is None:
        _SERVER.stdin.close()  # it ends at the end of its input
        _SERVER.wait()
    _SERVER_ENV = dict(env)
    _SERVER = subprocess.Popen([sys.executable, '-u', __file__],
                               stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE,
                               env=_SERVER_ENV,
                               text=True)
    ready = _SERVER.stdout.readline()
    assert ready.strip() == 'ready', f'fork server failed: {ready!r}'
    return _SERVER


def run(args, cwd, env, timeout):
    """Run ``args`` in a process forked from the server; returns a
    ``subprocess.CompletedProcess`` as ``subprocess.run`` would, or raises
    ``subprocess.TimeoutExpired`` (the process is killed)."""
    server = _server(env)
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, 'out'), os.path.join(tmp, 'err')
        umask = os.umask(0)
        os.umask(umask)
        request = dict(
            argv=[str(a) for a in args[1:]],
            cwd=str(cwd),
            env=env,
            umask=umask,
            out=out,
            err=err,
            timeout=timeout)
        server.stdin.write(json.dumps(request) + '\n')
        server.stdin.flush()
        reply = json.loads(server.stdout.readline())
        with open(out, errors='replace') as f:
            stdout = f.read()
        with open(err, errors='replace') as f:
            stderr = f.read()
    if reply['returncode'] is None:
        raise subprocess.TimeoutExpired(args, timeout, stdout, stderr)
    return subprocess.CompletedProcess(args, reply['returncode'], stdout,
                                       stderr)


def _child(request):
    """In the forked process: become ``python ARGV`` and never return."""
    import runpy
    import signal
    os.setpgrp()  # a timeout kills the command and what it started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request['cwd'])
    os.umask(request['umask'])
    os.environ.clear()
    os.environ.update(request['env'])
    for fd, path in ((1, request['out']), (2, request['err'])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, 'w', buffering=1, closefd=False)
    sys.stderr = open(2, 'w', buffering=1, closefd=False)
    argv = request['argv']
    code = 0
    try:
        if argv[0] == '-m':
            sys.argv = argv[1:]
            sys.path.insert(0, request['cwd'])
            runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
        else:
            script = os.path.abspath(argv[0])
            sys.argv = argv
            sys.path.insert(0, os.path.dirname(script))
            runpy.run_path(script, run_name='__main__')
    except SystemExit as ended:
        if ended.code is None:
            code = 0
        elif isinstance(ended.code, int):
            code = ended.code
        else:
            print(ended.code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    try:
        import atexit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _wait(pid, timeout):
    """The exit status of ``pid`` as subprocess reports it, or None after
    killing its process group when it runs past ``timeout`` seconds."""
    import signal
    import time
    end = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > end:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.05)


def _serve():
    """The server: import the stack once, then fork one process per
    request line on stdin and answer its exit status on stdout."""
    import matplotlib.pyplot  # noqa: F401
    import mmdet.apis  # noqa: F401
    import mmdet.datasets  # noqa: F401
    import mmdet.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import mmseg.models  # noqa: F401
    import torch  # noqa: F401

    import smt_mm  # noqa: F401
    channel = sys.stdout
    channel.write('ready\n')
    channel.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        returncode = _wait(pid, request['timeout'])
        channel.write(json.dumps(dict(returncode=returncode)) + '\n')
        channel.flush()


if __name__ == '__main__':
    sys.path.pop(0)  # this folder: not on a tool's path
    _serve()
