# Copyright (c) SMT-MM contributors. All rights reserved.
"""Config preparation shared by ``tools/train.py`` and ``tools/test.py``.

One launcher serves mmdet, mmseg and mmpretrain configs: the task is read
from the config's ``default_scope`` and only the few steps that differ
between the three codebases (result dumping, visualisation switches) are
looked up per task.
"""
import glob
import logging
import os
import os.path as osp
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict

from smt_mm.errors import SMTError
from .package import drop_package_scope

TASKS = ('mmdet', 'mmseg', 'mmpretrain')


class LaunchError(SMTError, RuntimeError):
    """A command-line or config problem the user has to fix."""


def add_common_args(parser) -> None:
    """Arguments every launcher shares: config overrides and launcher."""
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', default='none',
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
            close = sorted(f for f in os.listdir(folder)
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


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """``None``: no resume; ``'auto'``: latest checkpoint of the work dir;
    a path: that checkpoint."""
    if resume is None:
        return
    cfg.resume = True
    if resume != 'auto':
        if not osp.isfile(resume):
            raise LaunchError(f'--resume checkpoint not found: {resume}')
        cfg.load_from = resume
        return
    latest = latest_complete_checkpoint(cfg.work_dir)
    if latest is not None:
        cfg.load_from = latest


def latest_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from: the one named in the
    work dir's ``last_checkpoint`` if it is complete, else the newest
    complete ``*.pth`` there; None when there is none.

    Checkpoints written through SMT-MM are replaced atomically, but the
    pointer file is written in place by mmengine, and older runs or other
    tools may have left a truncated file: neither should stop a resume.
    """
    from mmengine.logging import print_log

    from smt_mm.safe_io import is_complete_checkpoint
    if not osp.isdir(work_dir):
        return None
    named = None
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        if named and is_complete_checkpoint(named):
            return named
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                   key=osp.getmtime, reverse=True)
    for path in found:
        if is_complete_checkpoint(path):
            if named:
                print_log(f'--resume: {named} (from last_checkpoint) is '
                          f'missing or incomplete; resuming from {path}',
                          logger='current', level=logging.WARNING)
            return path
    return None


def _replace_types(node, old: frozenset, new: str) -> None:
    """Set ``type=new`` in every nested dict whose type is in ``old``."""
    if isinstance(node, dict):
        if node.get('type') in old:
            node['type'] = new
        for value in node.values():
            _replace_types(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_types(value, old, new)


def _slurm_to_torch_env() -> None:
    """Set torch's rendezvous variables from the ones srun gives each task
    (what mmengine's slurm launcher does before pinning a GPU)."""
    import subprocess
    try:
        rank = os.environ['SLURM_PROCID']
        world_size = os.environ['SLURM_NTASKS']
    except KeyError as err:
        raise LaunchError(f'--launcher slurm: {err.args[0]} is not set; '
                          'start the tool with srun (tools/slurm_train.sh)')
    os.environ['RANK'] = rank
    os.environ['WORLD_SIZE'] = world_size
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ.get('SLURM_NODELIST', '')
        first = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1').strip()
        os.environ['MASTER_ADDR'] = first or '127.0.0.1'


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Prepare a distributed run; on a machine without GPU use gloo.

    mmengine's ``pytorch`` and ``slurm`` launchers pin a CUDA device and
    mmengine wraps the model in DDP with ``device_ids``; without a GPU both
    fail. Here the process group is created with gloo beforehand (rank and
    world size from srun's variables for slurm; mmengine then skips its own
    set-up), DDP gets ``device_ids=None`` and SyncBN, which needs CUDA,
    becomes BN.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher not in ('pytorch', 'slurm'):
        raise LaunchError(f'--launcher {launcher} needs GPUs; on CPU use '
                          '--launcher pytorch (tools/dist_train.sh) or slurm')
    if launcher == 'slurm':
        _slurm_to_torch_env()
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.device_ids = None
    cfg.model_wrapper_cfg = wrapper
    _replace_types(cfg.model, frozenset({'SyncBN', 'MMSyncBN'}), 'BN')


def innermost_dataset(dataset_cfg: ConfigDict) -> ConfigDict:
    """The dataset inside wrappers such as RepeatDataset."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


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


def enable_visualization(cfg: Config, task: str, show_dir: Optional[str],
                         show: bool = False, wait_time: float = 2) -> None:
    """Draw test predictions, saving them under ``show_dir``."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise LaunchError('--show/--show-dir need a visualization hook in '
                          'default_hooks')
    if task == 'mmpretrain':
        hook.update(enable=True, show=show, wait_time=wait_time,
                    out_dir=show_dir)
        return
    hook.update(draw=True, show=show, wait_time=wait_time)
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


def check_datasets(cfg: Config, *splits: str) -> None:
    """Fail early, naming the path, when a dataset's annotation file or
    image folder is missing or empty.

    Without this the run builds the whole model first and then fails inside
    a dataset or a data worker with a long traceback. ``splits`` are
    dataloader names such as ``'train_dataloader'``; absent ones and remote
    paths (``s3://``...) are skipped.
    """
    for split in splits:
        loader = cfg.get(split)
        if not loader or 'dataset' not in loader:
            continue
        for problem in _dataset_problems(innermost_dataset(loader.dataset)):
            raise LaunchError(f'{split}.dataset: {problem}')


def _dataset_problems(dataset: ConfigDict):
    root = dataset.get('data_root') or ''
    if '://' in str(root):
        return
    if root and not osp.isdir(root):
        yield f'data_root folder not found: {root}'
        return
    ann_file = dataset.get('ann_file')
    if ann_file:
        path = osp.join(root, ann_file)
        if not osp.isfile(path):
            yield f'annotation file not found: {path}'
    prefix = dataset.get('data_prefix') or {}
    folders = prefix.values() if isinstance(prefix, dict) else [prefix]
    for folder in folders:
        if not isinstance(folder, str) or not folder or '://' in folder:
            continue
        path = osp.join(root, folder)
        if not osp.isdir(path):
            yield f'data folder not found: {path}'
        elif not any(os.scandir(path)):
            yield f'data folder is empty: {path}'


def add_reseed_hook(cfg: Config) -> None:
    """Make training repeatable across ``--resume`` (see
    :class:`smt_mm.engine.RNGReseedHook`) unless the config has the hook."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'RNGReseedHook' for h in hooks):
        hooks.append(dict(type='RNGReseedHook'))
    cfg.custom_hooks = hooks


def add_tensorboard_backend(cfg: Config) -> bool:
    """Log to TensorBoard too when the ``tensorboard`` package is there.

    Configs cannot probe for optional packages, so they list only
    ``LocalVisBackend``; returns whether a backend was added.
    """
    import importlib.util
    visualizer = cfg.get('visualizer')
    if not visualizer or importlib.util.find_spec('tensorboard') is None:
        return False
    backends = list(visualizer.get('vis_backends') or [])
    if any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        return False
    visualizer.vis_backends = backends + [
        ConfigDict(type='TensorboardVisBackend')]
    return True


def build_runner(cfg: Config):
    """Build the config's runner (mmengine's Runner unless overridden),
    with :class:`~smt_mm.engine.RNGReseedHook` added and logging to
    TensorBoard as well where it is installed."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    add_reseed_hook(cfg)
    add_tensorboard_backend(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
