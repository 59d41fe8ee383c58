# Copyright (c) SMT-MM contributors. All rights reserved.
"""Command-line plumbing shared by the tools: common arguments, launcher
environment, and one-line errors instead of tracebacks."""
import errno
import os

from smt_mm.errors import LaunchError, SMTError

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
    """``--cfg-options key=value ...``: overrides of config settings, parsed
    by mmengine's ``DictAction`` once each is seen to be ``KEY=VALUE``.
    (Keys are checked against the config by
    :func:`~smt_mm.launch.config.load_config`.)"""
    from mmengine.config import DictAction

    class CfgOptions(DictAction):

        def __call__(self, parser, namespace, values, option_string=None):
            for option in values or ():
                check_key_value(option)
            super().__call__(parser, namespace, values, option_string)

    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptions,
        metavar='KEY=VALUE',
        help='override config settings, e.g. train_cfg.max_epochs=12')


def check_key_value(option: str) -> None:
    """Refuse a ``--cfg-options`` item that is not ``KEY=VALUE``.

    Raises:
        LaunchError: No ``=``, or nothing before it.
    """
    key, sep, _ = option.partition('=')
    if not sep or not key.strip():
        raise LaunchError(f'--cfg-options {option}: expected KEY=VALUE '
                          '(a dotted config key, e.g. '
                          'train_cfg.max_epochs=12 or '
                          "model.backbone.drop_path_rate=0.2)")


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


# Warnings the upstream stack emits that a user of our tools cannot act on,
# each named by (message regex, category, module regex of where it is
# reported); pytest.ini names the same for the tests.
UPSTREAM_WARNINGS = (
    # setuptools < 81 is pinned for mmcv's build; mmengine's package_utils
    # imports (and reloads, hence importlib) pkg_resources when a config or
    # the runner asks whether a package is installed
    (r'pkg_resources is deprecated as an API', UserWarning,
     r'(mmengine|mmcv|mmdet|mmseg|mmpretrain|importlib)(\.|$)'),
    # mmseg's notice on its own API, raised while it builds its heads
    (r'``build_loss`` would be deprecated soon', UserWarning,
     r'mmseg\.models\.builder'),
    # torchvision's FX feature extraction (timm's FeatureGraphNet)
    (r'The nodes obtained by tracing the model in train mode are different',
     UserWarning, r'torchvision\.models\.feature_extraction'),
)


def quiet_upstream_warnings() -> None:
    """Ignore :data:`UPSTREAM_WARNINGS`, by name, in this process; every
    other warning still shows. Called by :func:`run_cli` before the tool's
    ``main`` runs; ``import smt_mm`` changes no warning filter."""
    import warnings
    for message, category, module in UPSTREAM_WARNINGS:
        warnings.filterwarnings(
            'ignore', message=message, category=category, module=module)


def one_line(text: str) -> str:
    return ' '.join(str(text).split())


def run_cli(main) -> None:
    """Run a tool's ``main``; an :class:`~smt_mm.errors.SMTError` (bad
    argument, config, data or checkpoint) becomes one line on stderr and exit
    status 1 instead of a traceback through mmengine's runner. So does an
    OSError about the machine (disk full, quota, read-only file system,
    permissions, a name too long); other errors are bugs and keep their
    traceback. Upstream warnings a user cannot act on are filtered first
    (:func:`quiet_upstream_warnings`): the stack imports at the tool's top
    warn of nothing by default; the ones named are emitted later, while
    ``main`` reads the config or builds the runner."""
    import sys
    quiet_upstream_warnings()
    try:
        main()
    except SMTError as err:
        sys.exit(f'error: {one_line(err)}')  # one line, whatever it quotes
    except OSError as err:
        if err.errno not in USER_FIXABLE_ERRNOS:
            raise
        sys.exit(f'error: {one_line(describe_os_error(err))}')
