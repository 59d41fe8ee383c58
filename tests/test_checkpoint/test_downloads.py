# Copyright (c) SMT-MM contributors. All rights reserved.
"""Downloads of checkpoints: keyed by the whole URL, bounded in size and
time, never partial, never outside the cache, no credentials shown."""
import glob
import hashlib
import http.server
import os
import os.path as osp
import threading
import time

import pytest
import torch

from smt_mm.checkpoint import read_checkpoint, reading
from smt_mm.checkpoint.reading import cached_path
from smt_mm.errors import CheckpointLoadError


def _checkpoint_bytes(value, folder):
    path = folder / f'ckpt{value}.pth'
    torch.save({'state_dict': {'w': torch.full((4, ), float(value))}}, path)
    return path.read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; ``server.modes[path]`` misbehaves:
    'short' (announces more than it sends), 'endless' (no length, never
    ends), 'drip' (one byte at a time, slowly)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        path = self.path.split('?')[0]
        body = server.files.get(path)
        mode = server.modes.get(path)
        if body is None and mode is None:
            self.send_error(404)
            return
        self.send_response(200)
        if mode == 'short':
            self.send_header('Content-Length', str(len(body) * 2))
        elif mode is None:
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        try:
            if mode == 'endless':
                chunk = b'\0' * (1 << 16)
                while True:
                    self.wfile.write(chunk)
            elif mode == 'drip':
                for _ in range(100):
                    self.wfile.write(b'P')
                    self.wfile.flush()
                    time.sleep(0.3)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    httpd.files, httpd.modes, httpd.requests = {}, {}, []
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f'http://127.0.0.1:{httpd.server_address[1]}'
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _cache_files(tmp_path):
    return glob.glob(
        str(tmp_path / 'torch_home' / '**' / '*'), recursive=True) + \
        glob.glob(str(tmp_path / 'torch_home' / '**' / '.*'), recursive=True)


def test_cache_is_keyed_by_the_whole_url(server, tmp_path):
    server.files['/a/model.pth'] = _checkpoint_bytes(1, tmp_path)
    server.files['/b/model.pth'] = _checkpoint_bytes(2, tmp_path)
    first = read_checkpoint(f'{server.base}/a/model.pth')
    second = read_checkpoint(f'{server.base}/b/model.pth')
    assert first['state_dict']['w'][0] == 1
    assert second['state_dict']['w'][0] == 2
    read_checkpoint(f'{server.base}/a/model.pth')  # from the cache now
    assert server.requests == ['/a/model.pth', '/b/model.pth']


def test_a_body_cut_short_is_never_cached(server, tmp_path):
    server.files['/m.pth'] = _checkpoint_bytes(1, tmp_path)
    server.modes['/m.pth'] = 'short'
    url = f'{server.base}/m.pth'
    for _ in range(2):  # the second attempt downloads again
        with pytest.raises(CheckpointLoadError) as err:
            read_checkpoint(url)
        assert 'the body ended after' in str(err.value)
    assert len(server.requests) == 2
    assert not [f for f in _cache_files(tmp_path) if osp.isfile(f)]


def test_an_endless_body_stops_at_the_size_limit(server, tmp_path,
                                                 monkeypatch):
    monkeypatch.setenv('SMT_MM_MAX_DOWNLOAD_MB', '2')
    server.modes['/endless.pth'] = 'endless'
    with pytest.raises(CheckpointLoadError, match='exceeds the limit of'):
        read_checkpoint(f'{server.base}/endless.pth')
    assert not [f for f in _cache_files(tmp_path) if osp.isfile(f)]


def test_a_dripping_server_is_given_up(server, tmp_path, monkeypatch):
    monkeypatch.setattr(reading, '_RATE_GRACE', 1)
    server.modes['/drip.pth'] = 'drip'
    start = time.monotonic()
    with pytest.raises(CheckpointLoadError, match='too slow'):
        read_checkpoint(f'{server.base}/drip.pth')
    assert time.monotonic() - start < 10
    assert not [f for f in _cache_files(tmp_path) if osp.isfile(f)]


def test_url_paths_stay_inside_the_cache(server, tmp_path):
    cache = osp.join(str(tmp_path / 'torch_home'), 'hub', 'checkpoints')
    for url in (f'{server.base}/x/..', f'{server.base}/..%2F..%2Fevil',
                f'{server.base}/a/.hidden', f'{server.base}/'):
        path = osp.realpath(cached_path(url))
        assert path.startswith(cache + os.sep), (url, path)
        assert osp.basename(path) == 'checkpoint.pth', url


def test_hash_in_the_file_name_is_checked(server, tmp_path):
    body = _checkpoint_bytes(1, tmp_path)
    digest = hashlib.sha256(body).hexdigest()
    server.files[f'/model-{digest[:8]}.pth'] = body
    server.files['/model-deadbeef.pth'] = body
    read_checkpoint(f'{server.base}/model-{digest[:8]}.pth')
    with pytest.raises(CheckpointLoadError, match='does not start with'):
        read_checkpoint(f'{server.base}/model-deadbeef.pth')


def test_signed_urls_are_not_shown(server, tmp_path, monkeypatch):
    secret = 'X-Amz-Signature=0123456789abcdef'
    logged = []
    monkeypatch.setattr(reading, 'print_log',
                        lambda msg, *args, **kwargs: logged.append(msg))
    server.files['/m.pth'] = _checkpoint_bytes(1, tmp_path)
    read_checkpoint(f'{server.base}/m.pth?{secret}')
    with pytest.raises(CheckpointLoadError) as err:
        read_checkpoint(f'http://user:pw@127.0.0.1:1/missing.pth?{secret}')
    assert any('m.pth?...' in msg for msg in logged), logged
    for text in logged + [str(err.value)]:
        assert secret not in text and 'pw@' not in text, text


def test_timm_urls_go_through_this_downloader(server, tmp_path, fixtures_dir,
                                              monkeypatch):
    """``timm.create_model(..., pretrained_cfg_overlay=dict(url=...))``:
    cached by the whole URL and within the limits, like every download."""
    timm = pytest.importorskip('timm')
    pytest.importorskip('smt_mm.models.timm_models')
    expected = torch.load(osp.join(fixtures_dir, 'smt_tiny_expected.pth'))
    arch = dict(expected['arch'])
    num_classes = arch.pop('num_classes')
    with open(osp.join(fixtures_dir, 'smt_tiny_official.pth'), 'rb') as f:
        release = f.read()
    server.files['/a/smt_tiny.pth'] = server.files['/b/smt_tiny.pth'] = \
        release

    def create(url):
        return timm.create_model(
            'smt_t',
            pretrained=True,
            pretrained_cfg_overlay=dict(url=url),
            arch=arch,
            num_classes=num_classes)

    create(f'{server.base}/a/smt_tiny.pth')
    assert osp.isfile(cached_path(f'{server.base}/a/smt_tiny.pth'))
    monkeypatch.setenv('SMT_MM_MAX_DOWNLOAD_MB', '0.01')
    with pytest.raises(CheckpointLoadError, match='more than the limit'):
        create(f'{server.base}/b/smt_tiny.pth')  # another URL, same name
    assert server.requests == ['/a/smt_tiny.pth', '/b/smt_tiny.pth']


@pytest.mark.parametrize('value', ['inf', 'nan', '-5', '0', 'lots'])
def test_a_download_limit_that_is_not_a_size_is_one_line(
        server, tmp_path, monkeypatch, value):
    server.files['/m.pth'] = _checkpoint_bytes(1, tmp_path)
    monkeypatch.setenv('SMT_MM_MAX_DOWNLOAD_MB', value)
    with pytest.raises(CheckpointLoadError) as err:
        read_checkpoint(f'{server.base}/m.pth')
    assert str(err.value) == (
        f"SMT_MM_MAX_DOWNLOAD_MB={value!r} is not a positive number of MiB "
        '(e.g. 8192)')
