# Copyright (c) SMT-MM contributors. All rights reserved.
"""The one gate every checkpoint deletion of a training run passes: only a
regular file directly in the run's checkpoint folder, after the new
checkpoint is saved."""
import os

import pytest
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub

from smt_mm.engine.hooks import KeepCheckpointsHook


class _Runner:

    def __init__(self, work_dir):
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance('keep_ckpt_test')
        self.message_hub.update_info('last_ckpt', None)
        checkpoint = CheckpointHook(interval=1)
        checkpoint.out_dir = self.work_dir
        checkpoint.file_backend = LocalBackend()
        self.hooks = [checkpoint]


def _deletions(tmp_path, names):
    """Ask the wrapped backend to delete ``names`` and let the hook run;
    returns the runner's checkpoint hook backend and the hook."""
    runner = _Runner(tmp_path / 'work')
    keep = KeepCheckpointsHook()
    keep.before_train(runner)
    backend = runner.hooks[0].file_backend
    for name in names:
        if os.path.isdir(name):
            backend.rmtree(name)
        else:
            backend.remove(name)
    return runner, keep


def test_deletes_only_files_of_the_run_folder(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    own = work / 'epoch_1.pth'
    own.write_bytes(b'x')
    other_run = tmp_path / 'other' / 'best_coco_bbox_mAP_epoch_3.pth'
    other_run.parent.mkdir()
    other_run.write_bytes(b'y')
    folder = work / 'best_folder'
    folder.mkdir()
    link = work / 'epoch_2.pth'
    link.symlink_to(other_run)
    sneaky = work / '..' / 'other' / other_run.name

    runner, keep = _deletions(
        tmp_path,
        [str(own),
         str(other_run),
         str(folder),
         str(link),
         str(sneaky)])
    assert os.path.exists(own), 'deferred until the step is over'
    keep.after_train_epoch(runner)
    assert not os.path.exists(own)
    assert other_run.read_bytes() == b'y'
    assert folder.is_dir() and link.is_symlink()


def test_the_checkpoint_just_saved_is_never_deleted(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    saved = work / 'epoch_1.pth'
    saved.write_bytes(b'x')
    runner, keep = _deletions(tmp_path, [str(saved)])
    runner.message_hub.update_info('last_ckpt', str(saved))
    keep.after_train_iter(runner, 0)
    assert saved.exists()


@pytest.mark.parametrize('path, reason', [
    ('elsewhere/epoch_1.pth', 'outside the checkpoint folder'),
    ('work/missing.pth', 'does not exist'),
    ('work', 'outside the checkpoint folder'),
])
def test_removable_names_the_reason(tmp_path, path, reason):
    from smt_mm.engine.hooks import removable
    (tmp_path / 'work').mkdir()
    assert reason in removable(str(tmp_path / path), str(tmp_path / 'work'))
