# Copyright (c) SMT-MM contributors. All rights reserved.
"""Every way the toolkit loads a checkpoint (paths, URLs, mmengine's
loaders inside ``safe_loading``) refuses a code-carrying pickle with one
clear error, never executes config text stored in a file, and still loads
release and toolkit checkpoints; importing smt_mm changes no loader."""
import os
import os.path as osp
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from helpers import MINI_ARCH, REPO, write_tiny_det_config
from helpers.attacks import write_attacks
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from smt_mm.checkpoint import read_checkpoint, safe_loading
from smt_mm.checkpoint.reading import cached_path
from smt_mm.errors import CheckpointLoadError, UnsafeCheckpointError
from smt_mm.models import SMT

safe_load = read_checkpoint

TINY_ARCH = dict(MINI_ARCH, depths=[1, 1, 1, 1])


class RunsCommand:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture
def evil(tmp_path):
    """(path of a malicious .pth, marker file its unpickling would create)"""
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(
        {
            'state_dict': {
                'w': torch.ones(1)
            },
            'meta': RunsCommand(marker)
        }, path)
    return str(path), marker


def test_payload_is_real_when_loaded_unsafely(evil, monkeypatch):
    """Control: the fixture's file does run its command when unpickled
    fully, so the tests below show a refusal, not a dud payload."""
    path, marker = evil
    monkeypatch.setenv('SMT_MM_UNSAFE_LOAD', '1')
    safe_load(path)
    assert marker.exists()


def test_safe_load_refuses_code(evil, tmp_path):
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_load(path)
    message = str(err.value)
    assert path in message and 'for safety' in message
    assert 'posix.system' in message and '\n' not in message
    # The old pickle format (no zip container) is refused too.
    legacy = tmp_path / 'legacy.pth'
    with open(legacy, 'wb') as f:
        pickle.dump({'model': RunsCommand(marker)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError):
        safe_load(str(legacy))
    assert not marker.exists()


def test_torch_env_cannot_switch_safe_loading_off(evil, monkeypatch):
    """torch honours TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD when a caller (such
    as mmengine's own loader) leaves ``weights_only`` unset."""
    path, marker = evil
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    for load in (lambda: safe_load(path),
                 lambda: CheckpointLoader.load_checkpoint(path)):
        with pytest.raises(UnsafeCheckpointError), safe_loading():
            load()
    assert not marker.exists()


def test_mmengine_loaders_refuse_code(evil):
    """Inside safe_loading, everything reading through mmengine's
    CheckpointLoader (Pretrained init of any module, load_checkpoint,
    get_model) refuses; SMT's own Pretrained init refuses anywhere."""
    path, marker = evil
    model = torch.nn.Linear(1, 1)
    with pytest.raises(UnsafeCheckpointError), safe_loading():
        load_checkpoint(model, path)
    backbone = SMT(
        TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(UnsafeCheckpointError):
        backbone.init_weights()
    assert not marker.exists()


def test_release_and_toolkit_checkpoints_still_load(fixtures_dir, tmp_path):
    official = osp.join(fixtures_dir, 'smt_tiny_official.pth')
    assert 'model' in safe_load(official)
    hub = MessageHub.get_instance('test_safety')
    hub.update_scalar('train/loss', np.float32(0.25))
    path = tmp_path / 'epoch_1.pth'
    torch.save(
        dict(
            meta=dict(
                epoch=1, seed=np.int64(0), buf=HistoryBuffer([1.0], [1])),
            message_hub=hub.state_dict(),
            state_dict={'backbone.w': torch.ones(2)}), path)
    with safe_loading():
        loaded = CheckpointLoader.load_checkpoint(str(path))
    assert loaded['meta']['seed'] == 0
    assert loaded['message_hub']['log_scalars']['train/loss'].current() \
        == np.float32(0.25)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(CheckpointLoadError, match='not found: .*nope.pth'):
        safe_load(missing)
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.ones(1000)}, good)
    cases = {
        'truncated.pth': good.read_bytes()[:2000],
        'empty.pth': b'',
        'text.pth': b'not a checkpoint at all'
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointLoadError) as err:
            safe_load(str(path))
        assert str(path) in str(err.value)
        assert 'the file is truncated' in str(err.value)


def run_cli(args):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300)
    return proc.returncode, proc.stdout + proc.stderr, proc.stderr


def numpy_attack(tmp_path):
    """A file whose array has an object field filled from raw bytes."""

    class RawArray:

        def __reduce__(self):
            return (np.core.multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                    (1, (1, ), np.dtype([('a', 'O')]), False, b'A' * 8))

    path = tmp_path / 'numpy_attack.pth'
    with warnings.catch_warnings():  # numpy's np.core alias
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.save({'state_dict': {'w': torch.ones(1)}, 'x': RawArray()}, path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize('tool,attack', [('resume', 'code'),
                                         ('load_from', 'numpy'),
                                         ('test', 'stride0'),
                                         ('convert', 'deflate')])
def test_tools_refuse_code_with_one_line(evil, tmp_path, tool, attack):
    """tools/train.py --resume, load_from, tools/test.py CHECKPOINT and
    tools/convert_official.py refuse code and memory bombs. Each command
    line takes one kind of file: all of them read through the same
    ``read_checkpoint``, which the in-process tests try with every kind."""
    path, marker = evil
    if attack == 'numpy':
        path = numpy_attack(tmp_path)
    elif attack != 'code':
        path = write_attacks(tmp_path / 'bombs', megabytes=64)[attack]
    config = write_tiny_det_config(tmp_path / 'data', num_train=2)
    work = str(tmp_path / 'work')
    args = {
        'resume':
        ['tools/train.py', config, '--work-dir', work, '--resume', path],
        'load_from': [
            'tools/train.py', config, '--work-dir', work, '--cfg-options',
            f'load_from={path}'
        ],
        'test': ['tools/test.py', config, path, '--work-dir', work],
        'convert':
        ['tools/convert_official.py', path,
         str(tmp_path / 'out.pth')],
    }[tool]
    rc, output, stderr = run_cli(args)
    assert rc == 1, output[-3000:]
    assert 'Traceback' not in output
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: refused to load checkpoint {path} '
                           'for safety'), last
    assert not marker.exists()
    assert not (tmp_path / 'out.pth').exists()


def test_import_changes_no_mmengine_loader_or_backend():
    code = ('from mmengine.runner.checkpoint import CheckpointLoader as C\n'
            'from mmengine.fileio.backends import backends as B\n'
            'from mmengine.fileio.backends import prefix_to_backends as P\n'
            'before = dict(C._schemes), dict(B), dict(P)\n'
            'import smt_mm, smt_mm.checkpoint, smt_mm.engine\n'
            'after = dict(C._schemes), dict(B), dict(P)\n'
            'assert before[0] == after[0], "loaders changed"\n'
            'assert before[2] == after[2], "prefix backends changed"\n'
            'new = set(after[1]) - set(before[1])\n'
            'assert new == {"smt_atomic_local"}, new\n'
            'assert all(after[1][k] is v for k, v in before[1].items())\n')
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_safe_loading_is_scoped(evil):
    path, marker = evil
    saved = dict(CheckpointLoader._schemes)
    with safe_loading():
        assert CheckpointLoader._get_checkpoint_loader(path) is not \
            saved['']
    assert dict(CheckpointLoader._schemes) == saved


def test_config_text_in_a_checkpoint_is_dropped(tmp_path):
    """The strings mmengine's resume and inferencers would execute."""
    code = "import os; os.system('touch pwned')"
    path = tmp_path / 'iter_2.pth'
    torch.save(
        dict(
            meta=dict(config=code, cfg=code, epoch=0, iter=2),
            message_hub=dict(runtime_info=dict(cfg=code, iter=2)),
            state_dict={'w': torch.ones(1)}), path)
    loaded = read_checkpoint(str(path))
    assert loaded['meta'] == dict(epoch=0, iter=2)
    assert loaded['message_hub']['runtime_info'] == dict(iter=2)
    assert loaded['state_dict']['w'].item() == 1


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server serving ``tmp_path / 'served'``; yields its
    base URL."""
    import functools
    import http.server
    import threading
    folder = tmp_path / 'served'
    folder.mkdir()
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', folder, server
    finally:
        server.shutdown()


def test_urls_download_once_and_load_safely(http_server, fixtures_dir, evil,
                                            tmp_path, monkeypatch):
    import shutil
    base, folder, server = http_server
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    shutil.copy(osp.join(fixtures_dir, 'smt_tiny_official.pth'), folder)
    shutil.copy(evil[0], folder)
    url = f'{base}/smt_tiny_official.pth'
    assert 'model' in read_checkpoint(url)
    cached = cached_path(url)
    assert cached.startswith(str(tmp_path / 'torch_home' / 'hub'))
    assert osp.isfile(cached)
    # the backbone's Pretrained init, as the configs name release files
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = {k: v for k, v in expected['arch'].items() if k != 'num_classes'}
    backbone = SMT(arch, init_cfg=dict(type='Pretrained', checkpoint=url))
    backbone.init_weights()
    with torch.no_grad():
        out = backbone.eval()(expected['cases'][0]['input'])[-1]
    assert (out - expected['cases'][0]['stages'][-1]).abs().max() <= 1e-5
    # mmengine's http loader inside safe_loading, and a URL that is evil
    with safe_loading():
        assert 'model' in CheckpointLoader.load_checkpoint(url)
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            CheckpointLoader.load_checkpoint(f'{base}/evil.pth')
    assert not evil[1].exists()
    with pytest.raises(CheckpointLoadError, match='cannot download'):
        read_checkpoint(f'{base}/missing.pth')
    server.shutdown()  # the cached copy serves from now on
    server.server_close()
    assert 'model' in read_checkpoint(url)


def test_unknown_scheme_is_one_line():
    with pytest.raises(CheckpointLoadError, match='unknown scheme ftp://'):
        read_checkpoint('ftp://host/x.pth')


def test_inferencers_never_execute_config_text(tmp_path):
    """mmdet's inferencer given weights but no config executes the config
    text stored in the file; inside safe_loading that text is gone."""
    from mmdet.apis import DetInferencer
    marker = tmp_path / 'pwned'
    payload = f'open({str(marker)!r}, "w").close()\nmodel = dict()\n'
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'meta': {'cfg': payload}, 'state_dict': {}}, path)
    with pytest.raises(Exception):  # control: mmengine's own loader
        DetInferencer(weights=path, device='cpu')
    assert marker.exists()
    marker.unlink()
    with pytest.raises(Exception), safe_loading():
        DetInferencer(weights=path, device='cpu')
    assert not marker.exists()
