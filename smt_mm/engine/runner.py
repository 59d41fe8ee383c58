# Copyright (c) SMT-MM contributors. All rights reserved.
"""The runner of SMT-MM's configs and tools: mmengine's ``Runner`` with
checkpoints read safely, loaded strictly and written atomically."""
import logging
import os.path as osp
import zipfile
from typing import Optional

from mmengine.config import Config
from mmengine.dist import master_only
from mmengine.logging import MMLogger, print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from smt_mm.checkpoint import (ATOMIC_BACKEND, complete_checkpoints,
                               display_name, is_complete_checkpoint,
                               read_checkpoint, redact_urls,
                               remove_stale_temporaries, safe_loading)
from smt_mm.errors import (CheckpointLoadError, CorruptCheckpointError,
                           LaunchError)
from smt_mm.files import file_problem
from smt_mm.models.utils import apply_checkpoint
from .config_dump import dump_config
from .plain_state import from_plain, plain_checkpoint_saving
from .resume_check import check_resume_checkpoint


@RUNNERS.register_module()
class SMTRunner(Runner):
    """mmengine's ``Runner``, trustworthy with checkpoint files.

    Configs select it with ``runner_type = 'SMTRunner'`` (all of SMT-MM's
    do, and its tools use it for any config that names no other runner).
    Compared with mmengine's runner:

    * ``load_from``, ``--resume`` and ``tools/test.py CHECKPOINT`` read
      files with :func:`smt_mm.checkpoint.read_checkpoint` (weights only,
      URLs cached, config text stored in the file never executed), and so
      does every ``Pretrained`` init while the model is initialised;
    * the weights must fit the model: a missing, unexpected or wrongly
      shaped key or a non-finite tensor stops the run with one line.
      ``load_strict = False`` in the config loads the fitting part and
      lists what was skipped;
    * an official SMT release file (state dict under ``model``) loads into
      an SMT classifier as is; for other models the error says to use it
      as the backbone's ``init_cfg``;
    * ``--resume`` skips a damaged checkpoint for the newest intact one in
      the same folder, with a warning;
    * checkpoints are written atomically with the user's umask, and
      temporary files left by an interrupted save are removed when
      training starts;
    * checkpoints hold plain data only (tensors, numbers, strings,
      containers), so ``torch.load(weights_only=True)`` and upstream tools
      read them; loading rebuilds the message hub exactly.
    """

    @property
    def cfg(self):
        """The run's config. Signed URLs and credentials in it are redacted
        (a copy, made when the runner stores the config): the runner logs
        it, dumps it to the work dir and stores it in checkpoints, none of
        which may show them. The model and ``load_from`` were built from
        the config as given."""
        return self._redacted_cfg

    @cfg.setter
    def cfg(self, cfg) -> None:
        if isinstance(cfg, Config):
            plain = cfg.to_dict()
            redacted = redact_urls(plain)
            if redacted is not plain:
                cfg = Config(redacted, filename=cfg.filename)
        self._redacted_cfg = cfg

    @property
    def _experiment_name(self) -> str:
        return self.__dict__['_smt_experiment_name']

    @_experiment_name.setter
    def _experiment_name(self, name: str) -> None:
        # mmengine names a run's logger, message hub and default scope after
        # the config and the second the runner was built in: a second runner
        # built within that second in this process would get the first one's
        # logger and write its log into the first run's folder.
        unique, count = name, 1
        while MMLogger.check_instance_created(unique):
            count += 1
            unique = f'{name}_{count}'
        self.__dict__['_smt_experiment_name'] = unique

    @master_only
    def dump_config(self) -> None:
        """The config dump, which never replaces (or writes through a
        symlink at) a file SMT-MM did not write, such as the user's config
        when ``--work-dir`` is its folder
        (:func:`smt_mm.engine.config_dump.dump_config`)."""
        name = osp.basename(self.cfg.filename) if self.cfg.filename \
            else f'{self.timestamp}.py'
        dump_config(self.cfg, self.work_dir, self.log_dir, name)

    def _init_model_weights(self) -> None:
        with safe_loading():
            super()._init_model_weights()

    def train(self):
        if self.rank == 0:
            for path in remove_stale_temporaries(self.work_dir):
                print_log(
                    f'removed {path}, left by an interrupted save',
                    logger='current')
        return super().train()

    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: Optional[bool] = None,
                        revise_keys: list = [(r'^module\.', '')]):
        """Load ``filename`` into the model, strictly unless the config sets
        ``load_strict = False`` (or ``strict=False`` is passed)."""
        if strict is None:
            strict = self.cfg.get('load_strict', True)
        if not isinstance(strict, bool):  # None, 0, [] would mean False
            raise LaunchError(f'load_strict must be True or False, got '
                              f'{strict!r}')
        checkpoint = read_checkpoint(filename, map_location=map_location)
        # message hub buffers and numpy data stored as plain data
        try:
            checkpoint = from_plain(checkpoint)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CheckpointLoadError(
                f'checkpoint {display_name(filename)} holds a malformed '
                'message hub buffer or numpy entry (stored as plain data): '
                f'{type(err).__name__}: {err}') from None
        if getattr(self, '_resuming', False):
            check_resume_checkpoint(self, checkpoint, filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) \
            else self.model
        apply_checkpoint(model, checkpoint, filename, strict, revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {display_name(filename)}')
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        """mmengine's resume; a damaged ``filename`` is replaced by the
        newest intact checkpoint beside it. A checkpoint that cannot be
        resumed (no epoch, malformed message hub, optimizer state that does
        not fit) is refused before anything is loaded
        (:func:`~smt_mm.engine.resume_check.check_resume_checkpoint`)."""
        self._resuming = True
        try:
            _check_intact(filename)
            super().resume(filename, *args, **kwargs)
        except CorruptCheckpointError as err:
            fallback = _newest_intact_checkpoint(filename)
            if fallback is None:
                raise
            print_log(
                f'--resume: {err}; resuming from {fallback} instead',
                logger='current',
                level=logging.WARNING)
            super().resume(fallback, *args, **kwargs)
        finally:
            self._resuming = False

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs):
        """mmengine's checkpoint as plain data (message hub buffers and
        numpy values as tensors and dicts, see
        :mod:`smt_mm.engine.plain_state`), so that
        ``torch.load(weights_only=True)`` and the OpenMMLab tools read it;
        written through the atomic backend when ``out_dir`` is a local
        folder."""
        local = '://' not in str(out_dir)
        if local and kwargs.get('backend_args') is None and \
                kwargs.get('file_client_args') is None:
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        with plain_checkpoint_saving(self):
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)


def _check_intact(filename: str) -> None:
    """Refuse a local zip checkpoint whose records fail their CRC check
    (torch would load the damaged tensors without noticing)."""
    if '://' not in filename and file_problem(filename) is None and \
            zipfile.is_zipfile(filename) and \
            not is_complete_checkpoint(filename, verify_data=True):
        raise CorruptCheckpointError(
            f'checkpoint {filename} is damaged (a record fails its CRC '
            'check)')


def _newest_intact_checkpoint(filename: str) -> Optional[str]:
    """The newest complete ``*.pth`` beside ``filename``, other than it."""
    folder = osp.dirname(osp.abspath(filename))
    for path in complete_checkpoints(folder, verify_data=True):
        if osp.abspath(path) == osp.abspath(filename):
            continue
        try:
            read_checkpoint(path)
        except CheckpointLoadError:
            continue
        return path
    return None
