# Copyright (c) SMT-MM contributors. All rights reserved.
"""Command-line plumbing shared by the tools: common arguments, launcher
environment, and one-line errors instead of tracebacks."""
import os

from smt_mm.errors import SMTError


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


def run_cli(main) -> None:
    """Run a tool's ``main``; an :class:`~smt_mm.errors.SMTError` (bad
    argument, config, data or checkpoint) becomes one line on stderr and exit
    status 1 instead of a traceback through mmengine's runner."""
    import sys
    try:
        main()
    except SMTError as err:
        message = ' '.join(str(err).split())  # one line, whatever it quotes
        sys.exit(f'error: {message}')
