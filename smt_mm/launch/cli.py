# Copyright (c) SMT-MM contributors. All rights reserved.
"""Command-line plumbing shared by the tools: common arguments, launcher
environment, and one-line errors instead of tracebacks."""
import errno
import os

from smt_mm.errors import SMTError

# OSErrors that describe the machine, not a bug: reported as one line.
USER_FIXABLE_ERRNOS = {
    errno.ENOSPC: 'the file system is full; free some space',
    errno.EDQUOT: 'the disk quota is exhausted; free some space',
    errno.EFBIG: 'the file is larger than this machine allows (ulimit -f)',
    errno.ENAMETOOLONG: 'choose a shorter name',
    errno.EROFS: 'the file system is read-only; choose a writable path',
    errno.EACCES: 'check the permissions of the path',
    errno.EPERM: 'check the permissions of the path',
}


def add_cfg_options(parser) -> None:
    """``--cfg-options key=value ...``: overrides of config settings."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')


def add_model_args(parser) -> None:
    """``CONFIG [CHECKPOINT]`` of the tools that look at a model."""
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint file (default: random initialisation)')


def add_common_args(parser) -> None:
    """Arguments every launcher shares: config overrides and launcher."""
    add_cfg_options(parser)
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launcher_args(parser, argv=None):
    """Parse ``argv``; keep ``LOCAL_RANK`` for launchers that pass
    ``--local-rank`` instead of setting it."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def describe_os_error(err: OSError) -> str:
    """``strerror: filename (what to do)`` of an OSError."""
    what = err.strerror or str(err)
    if err.filename is not None:
        what += f': {err.filename}'
    hint = USER_FIXABLE_ERRNOS.get(err.errno)
    return f'{what} ({hint})' if hint else what


def one_line(text: str) -> str:
    return ' '.join(str(text).split())


def run_cli(main) -> None:
    """Run a tool's ``main``; an :class:`~smt_mm.errors.SMTError` (bad
    argument, config, data or checkpoint) becomes one line on stderr and exit
    status 1 instead of a traceback through mmengine's runner. So does an
    OSError about the machine (disk full, quota, read-only file system,
    permissions, a name too long); other errors are bugs and keep their
    traceback."""
    import sys
    try:
        main()
    except SMTError as err:
        sys.exit(f'error: {one_line(err)}')  # one line, whatever it quotes
    except OSError as err:
        if err.errno not in USER_FIXABLE_ERRNOS:
            raise
        sys.exit(f'error: {one_line(describe_os_error(err))}')
