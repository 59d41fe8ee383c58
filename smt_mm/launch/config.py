# Copyright (c) SMT-MM contributors. All rights reserved.
"""Reading a config and the edits the tools make to it (work dir, AMP,
lr scaling, TTA, visualisation, result dumps). One launcher serves mmdet,
mmseg and mmpretrain configs: the task comes from ``default_scope``."""
import difflib
import logging
import os
import os.path as osp
import re
from typing import List, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from smt_mm.checks.cfg_options import check_cfg_options
from smt_mm.checks.config import (check_model_config, check_peer_settings,
                                  list_merge_problem)
from smt_mm.checks.optim import check_optim_settings
from smt_mm.config_scheme import drop_package_scope
from smt_mm.config_tree import innermost_dataset
from smt_mm.errors import LaunchError
from smt_mm.files import file_problem

TASKS = ('mmdet', 'mmseg', 'mmpretrain')


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                check: bool = True) -> Config:
    """Read a config file, failing with a short message on a bad path.

    Configs may inherit ours as ``smt_mm::det/...`` (see
    :mod:`smt_mm.config_scheme`). With ``check``, the model's types and
    SMT's arguments are checked as well
    (:func:`~smt_mm.checks.config.check_model_config`), so a typo is
    one line before anything is built; Swin-style ``custom_keys`` are
    extended to SMT's norm layers and a pretrained SMT fed inputs
    normalised otherwise than its ImageNet weights expect is reported, one
    warning line each
    (:func:`~smt_mm.checks.config.check_peer_settings`); a ``'norm'``
    custom key is extended to SMT's BatchNorm layers and a layer-decay
    constructor is checked against the model, mmdet's and mmseg's
    ConvNeXt one run on SMT as SMT-MM's
    (:func:`~smt_mm.checks.optim.check_optim_settings`). A dict written
    over a base's list (a list-valued neck) is one line saying to restate
    the list (:func:`~smt_mm.checks.config.list_merge_problem`).

    ``cfg_options`` keys that look like typos of the config's keys are
    refused (:func:`~smt_mm.checks.cfg_options.check_cfg_options`).

    Raises:
        LaunchError: A missing config or ``_base_`` file, a config mmengine
            cannot parse or merge, a mistyped ``cfg_options`` key, failing
            ``custom_imports`` or an unknown model type.
        SMTConfigError: An SMT setting out of range.
        SMTConfigTypeError: An unknown SMT argument or a setting of the
            wrong type.
    """
    problem = file_problem(path)
    if problem == 'not found':
        raise LaunchError(f'config file not found: {path}'
                          f'{_similar_files_hint(path)}')
    if problem:
        raise LaunchError(f'config {path} is {problem}, not a config file')
    base_files(path)  # a loop or a FIFO in the chain: one line, no hang
    try:
        cfg = drop_package_scope(Config.fromfile(path))
        if cfg_options:
            check_cfg_options(cfg, cfg_options)  # a typo is not a new key
            cfg.merge_from_dict(cfg_options)
    except FileNotFoundError as err:
        # only a missing _base_ file reaches here: the config itself exists
        missing = _missing_path(err)
        raise LaunchError(f'cannot read config {path}: _base_ file '
                          f'{missing} does not exist'
                          f'{_similar_files_hint(missing)}') from None
    except ImportError as err:
        raise LaunchError(f'cannot read config {path}: custom_imports '
                          f'failed: {_import_failure(err)}') from None
    except OSError as err:  # mmengine: a _base_ of another file type
        raise LaunchError(f'cannot read config {path}: a _base_ file is not '
                          f'a config ({err}); name .py, .yml or .json '
                          'configs') from None
    except (TypeError, KeyError, ValueError, SyntaxError, NameError) as err:
        # mmengine's own message (e.g. which key cannot inherit from its
        # base) is the useful part; its traceback is config-parser internals.
        # A dict over a base's list (a list-valued neck) gets ours: mmengine
        # suggests _delete_=True, which drops the whole list.
        message = list_merge_problem(path, err) or \
            f'{type(err).__name__}: {err}'
        raise LaunchError(f'cannot read config {path}: {message}') from None
    if check:
        _import_custom_modules(cfg, path)
        check_model_config(cfg)
        for line in check_peer_settings(cfg) + check_optim_settings(cfg):
            print_log(line, logger='current', level=logging.WARNING)
    return cfg


def base_files(path: str) -> List[str]:
    """The local files the config at ``path`` inherits, at any depth
    (``PACKAGE::`` bases are the packages' own).

    Raises:
        LaunchError: A file in the chain is not a regular file (a FIFO
            would block the parser), or the chain inherits itself.
    """
    found, done = [], set()

    def visit(current, chain):
        try:
            bases = Config._get_base_files(current)
        except Exception:  # not parseable: Config.fromfile says why
            return
        for base in bases:
            if '::' in base:
                continue
            base = osp.normpath(osp.join(osp.dirname(current), base))
            real = osp.realpath(base)
            if real in chain:
                raise LaunchError(f'cannot read config {path}: {current} '
                                  f'inherits {base}, which inherits it: '
                                  'remove the loop from the _base_ chain')
            problem = file_problem(base)
            if problem and problem != 'not found':  # missing: fromfile
                raise LaunchError(f'cannot read config {path}: _base_ '
                                  f'{base} is {problem}, not a config file')
            if problem is None and real not in done:  # each file once
                found.append(base)
                visit(base, chain | {real})
                done.add(real)

    visit(path, {osp.realpath(path)})
    return found


def _import_failure(err: ImportError) -> str:
    """What failed to import, from the innermost error: mmengine rewraps
    it, once with the whole ``sys.path`` in the message."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    return f'{type(err).__name__}: {err}'.splitlines()[0]


def _missing_path(err: FileNotFoundError) -> str:
    """The file a FileNotFoundError is about (mmengine's own message for
    ``PACKAGE::`` paths quotes it instead of setting ``filename``)."""
    if err.filename:
        return osp.normpath(err.filename)
    quoted = re.search(r'"([^"]+)"', str(err))
    return osp.normpath(quoted.group(1)) if quoted else str(err)


def _similar_files_hint(path: str) -> str:
    """`` (similar files there: ...)`` for a mistyped file name, or why the
    folder cannot hold it."""
    folder = osp.dirname(path) or '.'
    if not osp.isdir(folder):
        return f' (folder {folder} does not exist either)'
    name = osp.basename(path)
    candidates = [f for f in os.listdir(folder) if f.endswith('.py')]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    # names sharing a prefix catch longer typos in long config names
    close += sorted(
        f for f in candidates if f.startswith(name[:6]) and f not in close)
    return f' (similar files there: {", ".join(close[:5])})' if close else ''


def _import_custom_modules(cfg: Config, path: str) -> None:
    """Import ``custom_imports`` (again: ``--cfg-options`` may have set
    them after mmengine imported the file's), so that the types they
    register are found by the check."""
    custom = cfg.get('custom_imports')
    if not custom:
        return
    from mmengine.utils import import_modules_from_strings
    try:
        import_modules_from_strings(**custom)
    except (ImportError, TypeError) as err:
        raise LaunchError(f'cannot read config {path}: custom_imports '
                          f'failed: {_import_failure(err)}') from None


def task_of(cfg: Config) -> str:
    """The OpenMMLab codebase a config belongs to, from ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise LaunchError(
            f'config default_scope is {scope!r}; SMT-MM launchers support '
            f'{", ".join(TASKS)}')
    return scope


def set_work_dir(cfg: Config, config_path: str,
                 work_dir: Optional[str]) -> None:
    """Command line > config > ./work_dirs/<config name>.

    Fails now, rather than after the model is built, when the folder
    cannot be created or written.
    """
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
    check_writable_dir(cfg.work_dir, 'work dir')


def check_writable_dir(path: str, what: str) -> None:
    """Fail with a :class:`LaunchError` unless ``path`` is a folder that
    exists or can be created, and can be written to.

    Remote paths (``s3://``...) are left to their backend. Only permission
    bits and read-only mounts are seen (``os.access``), without creating
    anything.
    """
    if '://' in str(path):
        return
    target = osp.abspath(path)
    if osp.exists(target) and not osp.isdir(target):
        raise LaunchError(f'{what} {path} is a file, not a folder; choose '
                          'another path')
    existing = target
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise LaunchError(f'{what} {path} cannot be created: {existing} is '
                          'a file, not a folder; choose another path')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LaunchError(f'{what} {path} is not writable: no write '
                          f'permission in {existing} (or a read-only file '
                          'system); choose a writable path')


def check_writable_file(path: str, what: str) -> None:
    """Like :func:`check_writable_dir` for a file to be written."""
    if osp.isdir(path):
        raise LaunchError(f'{what} {path} is a folder, not a file; give a '
                          'file path')
    check_writable_dir(osp.dirname(osp.abspath(path)), f'folder of {what}')


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to mixed precision: mmengine's
    ``AmpOptimWrapper`` (fp16 with loss scaling) on a GPU; without one,
    bfloat16 autocast of the backbone and neck
    (:class:`~smt_mm.engine.BF16AmpOptimWrapper`; mmcv's CPU ops in the
    heads take float32 only)."""
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind == 'AmpOptimWrapper':
        amp_on_cpu(cfg)
        return
    if kind == 'BF16AmpOptimWrapper':
        return
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        _to_bf16(wrapper)


# Arguments of mmengine's AmpOptimWrapper that BF16AmpOptimWrapper has not:
# bfloat16 needs no loss scaling, and its dtype is bfloat16.
_AMP_ONLY_ARGS = ('loss_scale', 'dtype', 'use_fsdp')


def amp_on_cpu(cfg: Config) -> bool:
    """Make a config that names mmengine's ``AmpOptimWrapper`` (e.g.
    mmdet's ``*_amp-*`` configs) train on a machine without CUDA, as
    ``--amp`` does there: :class:`~smt_mm.engine.BF16AmpOptimWrapper`
    with bfloat16 autocast of the backbone and neck (mmengine's wrapper
    asserts that a GPU is present).

    Returns:
        bool: Whether the wrapper was switched (False with CUDA, or when
        the config does not name ``AmpOptimWrapper``).
    """
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict) or torch.cuda.is_available() or \
            wrapper.get('type') != 'AmpOptimWrapper':
        return False
    _to_bf16(wrapper)
    return True


def _to_bf16(wrapper: ConfigDict) -> None:
    wrapper.type = 'BF16AmpOptimWrapper'
    for key in _AMP_ONLY_ARGS:
        wrapper.pop(key, None)
    wrapper.setdefault('autocast_modules', ('backbone', 'neck'))


def amp_message(cfg: Config) -> Optional[str]:
    """The line that says how a run without CUDA does mixed precision, or
    None when it does not (or runs on a GPU)."""
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict) or torch.cuda.is_available() or \
            wrapper.get('type') != 'BF16AmpOptimWrapper':
        return None
    modules = wrapper.get('autocast_modules')
    where = 'the whole forward' if modules is None else \
        'the forward of ' + ', '.join(modules)
    return (f'AMP on CPU: bfloat16 autocast of {where} '
            '(BF16AmpOptimWrapper, no loss scaling; mmengine\'s '
            'AmpOptimWrapper needs a GPU)')


def enable_auto_scale_lr(cfg: Config) -> None:
    """Scale the learning rate by actual / ``base_batch_size``."""
    auto = cfg.get('auto_scale_lr')
    if not auto or 'base_batch_size' not in auto:
        raise LaunchError('--auto-scale-lr needs auto_scale_lr = dict('
                          'base_batch_size=...) in the config')
    auto.enable = True


def drop_training(cfg: Config) -> None:
    """Remove what only training needs: a test run must not build (or need)
    the training data. mmseg's visualization hook reads ``runner.iter``,
    which builds the train loop and with it the train dataloader."""
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler'):
        cfg[key] = None


def enable_tta(cfg: Config) -> None:
    """Wrap the model in the config's ``tta_model`` and use its
    ``tta_pipeline`` for the test set."""
    missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
    if missing:
        raise LaunchError(f'--tta needs {" and ".join(missing)} in the '
                          'config')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset = innermost_dataset(cfg.test_dataloader.dataset)
    dataset.pipeline = cfg.tta_pipeline
    if 'batch_shapes_cfg' in dataset:
        dataset.batch_shapes_cfg = None


def add_result_dump(cfg: Config, task: str, out: str):
    """Make the test run save its raw predictions to ``out``.

    Returns a metric to append to the runner's test evaluator, or None when
    the config itself was changed (mmseg writes prediction maps to a
    folder).
    """
    if task == 'mmseg':
        check_writable_dir(out, '--out')
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
        return None
    if not out.endswith(('.pkl', '.pickle')):
        raise LaunchError(f'--out must be a .pkl/.pickle file, got {out}')
    check_writable_file(out, '--out')
    if task == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        return DumpDetResults(out_file_path=out)
    from mmengine.evaluator import DumpResults
    return DumpResults(out_file_path=out)
