# Copyright (c) SMT-MM contributors. All rights reserved.
"""Which checkpoint ``--resume`` continues from, and keeping a new run from
replacing an earlier run's checkpoints."""
import glob
import logging
import os.path as osp
from typing import Optional

from mmengine.config import Config

from smt_mm.errors import LaunchError
from smt_mm.files import check_input_file, read_small_text


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """``None``: no resume; ``'auto'``: latest checkpoint of the work dir;
    a path: that checkpoint."""
    if resume is None:
        return
    cfg.resume = True
    if resume != 'auto':
        check_input_file(resume, '--resume checkpoint', 'checkpoint file')
        cfg.load_from = resume
        return
    latest = latest_complete_checkpoint(cfg.work_dir)
    if latest is not None:
        cfg.load_from = latest
    else:  # nothing to resume (mmengine would read last_checkpoint itself)
        cfg.resume = False
        from mmengine.logging import print_log
        print_log(
            f'--resume: no complete checkpoint in {cfg.work_dir}; training '
            'starts from the beginning',
            logger='current',
            level=logging.WARNING)


def latest_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from: the one named in the
    work dir's ``last_checkpoint`` if it is complete, else the newest
    complete ``*.pth`` there; None when there is none.

    Checkpoints written through SMT-MM are replaced atomically, but the
    pointer file is written in place by mmengine, and older runs or other
    tools may have left a truncated file: neither should stop a resume.
    """
    from mmengine.logging import print_log

    from smt_mm.checkpoint import complete_checkpoints, is_complete_checkpoint
    if not osp.isdir(work_dir):
        return None
    named = None
    pointer = read_small_text(osp.join(work_dir, 'last_checkpoint'))
    if pointer is not None:
        named = pointer.strip() or None
        if named and is_complete_checkpoint(named):
            return named
    path = next(complete_checkpoints(work_dir), None)
    if path is not None and named:
        print_log(
            f'--resume: {named} (from last_checkpoint) is missing or '
            f'incomplete; resuming from {path}',
            logger='current',
            level=logging.WARNING)
    return path


def protect_earlier_run(cfg: Config, resume: Optional[str],
                        overwrite: bool) -> None:
    """Refuse a new (not resumed) run into a work dir that holds another
    run's checkpoints: its saves would replace them and
    ``last_checkpoint``."""
    if resume is not None or overwrite or not osp.isdir(cfg.work_dir):
        return
    found = glob.glob(osp.join(glob.escape(cfg.work_dir), '*.pth'))
    if found or osp.isfile(osp.join(cfg.work_dir, 'last_checkpoint')):
        raise LaunchError(
            f'work dir {cfg.work_dir} holds checkpoints of an earlier run '
            f'({len(found)} *.pth); pass --resume to continue it, '
            '--overwrite to replace them, or choose another --work-dir')
