# Copyright (c) SMT-MM contributors. All rights reserved.
"""Every private detail of mmengine, mmcv, torch and numpy that SMT-MM
relies on, each pinned by a test that fails loudly when the upstream
detail changes (rather than a protection silently doing nothing).

Where each one is used:

* ``CheckpointLoader._schemes`` -- ``smt_mm.checkpoint.reading.safe_loading``
  swaps in the safe reader for the block;
* ``HistoryBuffer._statistics_methods``, ``._log_history``,
  ``._count_history`` -- the safe unpickler, ``plain_state`` and
  ``resume_check`` read and rebuild message-hub buffers;
* ``Runner._hooks`` -- ``plain_checkpoint_saving`` removes its hook again;
* ``Runner._init_model_weights`` / ``._has_loaded`` -- ``SMTRunner``
  wraps weight init in safe loading and marks a loaded checkpoint;
* ``IterBasedTrainLoop.dataloader_iterator`` -- ``RNGReseedHook`` can only
  key the sampler of a loop that has not started iterating;
* ``Config._cfg_dict`` -- ``drop_package_scope`` edits the tree in place;
* ``Config._get_base_files`` -- ``smt_mm.launch.config.base_files`` walks
  a ``_base_`` chain (loops, FIFOs) before mmengine parses it;
* ``Runner._experiment_name`` -- ``SMTRunner`` makes it unique per process
  before mmengine names the logger, message hub and scope after it;
* ``state_dict._metadata`` -- versioned key upgrades of SMT;
* the text of torch's weights-only refusal -- told from a damaged file;
* numpy's pickled dtype state layout -- the safe unpickler's dtype check;
* ``mmcv._ext`` -- selfcheck names the compiled ops library;
* the progress keys of mmengine's parameter schedulers' state -- the resume
  check tells a changed schedule from progress;
* ``OptimizedModule._orig_mod`` -- the benchmark reads a compiled side's
  gradients from the eager module;
* ``timm.models._features.feature_take_indices`` -- the timm entry's
  ``forward_intermediates``;
* ``mmengine.config.utils.MODULE2PACKAGE`` -- ``import smt_mm`` adds
  ``smt_mm`` there so that ``smt_mm::`` config paths resolve;
* the text of mmcv's ``LoadImageFromFile`` failure (``failed to load
  image: PATH``) -- ``smt_mm.checks.dataset.data_error_message`` turns it
  into one line naming the image.
"""
import importlib.util
import inspect
import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn


def test_checkpoint_loader_schemes():
    from mmengine.runner import CheckpointLoader

    from smt_mm.checkpoint.reading import _safe_schemes, safe_loading
    schemes = CheckpointLoader._schemes
    assert isinstance(schemes, dict)
    assert {'', 'http://', 'https://'} <= set(schemes)
    replaced = _safe_schemes(schemes)
    assert set(replaced) == set(schemes)
    # the lookup reads the attribute on every call: swapping it works
    source = inspect.getsource(CheckpointLoader._get_checkpoint_loader)
    assert 'cls._schemes' in source
    with safe_loading():
        assert CheckpointLoader._get_checkpoint_loader('x.pth') is \
            replaced['']
    assert CheckpointLoader._schemes is schemes


def test_history_buffer_fields():
    from mmengine.logging import HistoryBuffer
    assert isinstance(HistoryBuffer._statistics_methods, dict)
    buffer = HistoryBuffer()
    buffer.update(1.5, 2)
    assert isinstance(buffer._log_history, np.ndarray)
    assert isinstance(buffer._count_history, np.ndarray)
    assert buffer._log_history.tolist() == [1.5]
    assert buffer._count_history.tolist() == [2]


def test_runner_internals():
    from mmengine.runner import IterBasedTrainLoop, Runner
    assert 'self._hooks' in inspect.getsource(Runner.register_hook)
    assert 'self._init_model_weights()' in inspect.getsource(Runner.train)
    assert 'self._has_loaded' in inspect.getsource(Runner.load_or_resume)
    assert 'self.dataloader_iterator' in inspect.getsource(
        IterBasedTrainLoop.__init__)


def test_config_base_files(tmp_path):
    from mmengine.config import Config
    config = tmp_path / 'child.py'
    config.write_text("_base_ = ['./a.py', 'mmdet::b.py']\n")
    assert Config._get_base_files(str(config)) == ['./a.py', 'mmdet::b.py']


def test_runner_experiment_name_is_set_before_it_names_things():
    from mmengine.runner import Runner
    source = inspect.getsource(Runner.__init__)
    named = source.index('self._experiment_name = ')
    assert named < source.index('DefaultScope.get_instance(')
    assert named < source.index('self.build_logger(')
    assert "log_cfg.setdefault('name', self._experiment_name)" in \
        inspect.getsource(Runner.build_logger)


def test_config_tree_attribute():
    from mmengine.config import Config, ConfigDict
    cfg = Config(dict(model=dict(type='A', _scope_='smt_mm')))
    assert isinstance(cfg._cfg_dict, ConfigDict)
    del cfg._cfg_dict.model['_scope_']
    assert '_scope_' not in cfg.model


def test_state_dict_metadata():
    state = nn.Sequential(nn.Linear(1, 1)).state_dict()
    assert state._metadata['0']['version'] == nn.Linear._version
    params = inspect.signature(nn.Module._load_from_state_dict).parameters
    assert list(params) == [
        'self', 'state_dict', 'prefix', 'local_metadata', 'strict',
        'missing_keys', 'unexpected_keys', 'error_msgs'
    ]


def test_weights_only_refusal_text():
    from smt_mm.checkpoint.reading import _is_refusal, _refusal_reason
    payload = pickle.dumps(print, protocol=2)  # a GLOBAL torch refuses
    with pytest.raises(pickle.UnpicklingError) as info:
        torch.load(io.BytesIO(payload), weights_only=True)
    reason = _refusal_reason(info.value)
    assert _is_refusal(info.value, reason)
    assert 'GLOBAL print' in reason


def test_numpy_dtype_state_layout():
    state = np.dtype('<f4').__reduce__()[2]
    assert len(state) == 8
    assert state[1] == '<' and state[2:5] == (None, None, None)
    assert state[5:8] == (-1, -1, 0)


def test_mmcv_ops_library():
    assert importlib.util.find_spec('mmcv._ext') is not None


def test_scheduler_progress_keys():
    from mmengine.optim import CosineAnnealingLR, LinearLR

    from smt_mm.engine.resume_check import SCHEDULER_PROGRESS
    for make in (lambda opt: LinearLR(opt, start_factor=0.1, end=5),
                 lambda opt: CosineAnnealingLR(opt, T_max=10)):
        params = [torch.zeros(1, requires_grad=True)]
        fresh = make(torch.optim.SGD(params, lr=0.1)).state_dict()
        optimizer = torch.optim.SGD(params, lr=0.1)
        scheduler = make(optimizer)
        for _ in range(3):
            optimizer.step()
            scheduler.step()
        stepped = scheduler.state_dict()
        changed = {
            k
            for k in set(fresh) | set(stepped)
            if fresh.get(k) != stepped.get(k)
        }
        assert changed and changed <= set(SCHEDULER_PROGRESS), changed


def test_compiled_module_keeps_the_eager_one():
    model = nn.Linear(2, 2)
    assert torch.compile(model)._orig_mod is model  # compiles lazily


def test_timm_feature_indices():
    features = pytest.importorskip('timm.models._features')
    indices, last = features.feature_take_indices(4, (1, 3))
    assert list(indices) == [1, 3] and last == 3


def test_config_package_table():
    from mmengine.config import Config, utils

    import smt_mm  # noqa: F401  (adds smt_mm to the table)
    from smt_mm.config_scheme import PACKAGE
    assert isinstance(utils.MODULE2PACKAGE, dict)
    # read on every lookup, so an entry added after import counts
    assert utils._get_package_and_cfg_path(f'{PACKAGE}::det/x.py') == (
        utils.MODULE2PACKAGE[PACKAGE], 'det/x.py')
    # the lookup Config makes for a `PACKAGE::` base
    assert '_get_package_and_cfg_path(' in inspect.getsource(
        Config._get_cfg_path)


def test_mmcv_image_failure_text(tmp_path):
    from mmcv.transforms import LoadImageFromFile

    from smt_mm.checks.dataset import data_error_message
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not an image')
    with pytest.raises(AssertionError) as info:
        LoadImageFromFile()(dict(img_path=str(broken)))
    message = data_error_message(info.value)
    assert message and message.startswith(f'cannot read image {broken}:')
