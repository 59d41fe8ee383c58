# Copyright (c) SMT-MM contributors. All rights reserved.
"""Reading a config and the edits the tools make to it (work dir, AMP,
lr scaling, TTA, visualisation, result dumps). One launcher serves mmdet,
mmseg and mmpretrain configs: the task comes from ``default_scope``."""
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict

from smt_mm.errors import LaunchError
from .package import drop_package_scope

TASKS = ('mmdet', 'mmseg', 'mmpretrain')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file, failing with a short message on a bad path.

    Configs may inherit ours as ``smt_mm::det/...`` (see
    :mod:`smt_mm.utils.package`).
    """
    if not osp.isfile(path):
        hint = ''
        folder = osp.dirname(path) or '.'
        if osp.isdir(folder):
            stem = osp.basename(path)[:6]
            close = sorted(
                f for f in os.listdir(folder)
                if f.endswith('.py') and f.startswith(stem))
            if close:
                hint = f' (similar files there: {", ".join(close[:5])})'
        raise LaunchError(f'config file not found: {path}{hint}')
    try:
        cfg = drop_package_scope(Config.fromfile(path))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    except (TypeError, KeyError, ValueError, SyntaxError, NameError) as err:
        # mmengine's own message (e.g. which key cannot inherit from its
        # base) is the useful part; its traceback is config-parser internals.
        raise LaunchError(f'cannot read config {path}: '
                          f'{type(err).__name__}: {err}') from None
    return cfg


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
    """Command line > config > ./work_dirs/<config name>."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        cfg.work_dir = osp.join('./work_dirs', name)


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to mixed precision: mmengine's
    ``AmpOptimWrapper`` (fp16 with loss scaling) on a GPU; without one,
    bfloat16 autocast of the backbone and neck
    (:class:`~smt_mm.engine.BF16AmpOptimWrapper`; mmcv's CPU ops in the
    heads take float32 only)."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') in ('AmpOptimWrapper',
                                               'BF16AmpOptimWrapper'):
        return
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.type = 'BF16AmpOptimWrapper'
        wrapper.pop('loss_scale', None)
        wrapper.setdefault('autocast_modules', ('backbone', 'neck'))


def enable_auto_scale_lr(cfg: Config) -> None:
    """Scale the learning rate by actual / ``base_batch_size``."""
    auto = cfg.get('auto_scale_lr')
    if not auto or 'base_batch_size' not in auto:
        raise LaunchError('--auto-scale-lr needs auto_scale_lr = dict('
                          'base_batch_size=...) in the config')
    auto.enable = True


def innermost_dataset(dataset_cfg: ConfigDict) -> ConfigDict:
    """The dataset inside wrappers such as RepeatDataset."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


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


def enable_visualization(cfg: Config,
                         task: str,
                         show_dir: Optional[str],
                         show: bool = False,
                         wait_time: float = 2,
                         interval: int = 1) -> None:
    """Draw every ``interval``-th batch of test predictions, saving them
    under ``show_dir``."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise LaunchError('--show/--show-dir need a visualization hook in '
                          'default_hooks')
    if task == 'mmpretrain':
        hook.update(
            enable=True,
            show=show,
            wait_time=wait_time,
            out_dir=show_dir,
            interval=interval)
        return
    hook.update(draw=True, show=show, wait_time=wait_time, interval=interval)
    if show_dir is None:
        return
    if task == 'mmdet':
        hook.test_out_dir = show_dir
    else:
        cfg.visualizer.save_dir = show_dir


def add_result_dump(cfg: Config, task: str, out: str):
    """Make the test run save its raw predictions to ``out``.

    Returns a metric to append to the runner's test evaluator, or None when
    the config itself was changed (mmseg writes prediction maps to a
    folder).
    """
    if task == 'mmseg':
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
        return None
    if not out.endswith(('.pkl', '.pickle')):
        raise LaunchError(f'--out must be a .pkl/.pickle file, got {out}')
    if task == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        return DumpDetResults(out_file_path=out)
    from mmengine.evaluator import DumpResults
    return DumpResults(out_file_path=out)
