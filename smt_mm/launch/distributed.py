# Copyright (c) SMT-MM contributors. All rights reserved.
"""Distributed set-up, including CPU-only machines (gloo) and Slurm."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict

from smt_mm.config_tree import walk_dicts
from smt_mm.errors import LaunchError


def _replace_types(node, old: frozenset, new: str) -> None:
    """Set ``type=new`` in every nested dict whose type is in ``old``."""
    for _, found, _ in walk_dicts(node):
        if found.get('type') in old:
            found['type'] = new


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
