# Copyright (c) SMT-MM contributors. All rights reserved.
"""tools/install.sh: which torch it keeps, and the offline install from a
wheelhouse (``WHEELHOUSE=DIR``) with no package index reachable.

The virtualenvs here see this test's own packages through a ``.pth`` file
(``--system-site-packages`` would show the base interpreter's, not this
virtualenv's), so torch and mmcv are not copied; a package hidden from that
view is what the install has to fetch.
"""
import base64
import hashlib
import importlib.metadata
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from helpers import REPO

INSTALL = osp.join(REPO, 'tools', 'install.sh')


def _free_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _offline_env(**extra) -> dict:
    """The environment without this machine's pip settings, with an index
    that refuses connections."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env.update(
        PIP_CONFIG_FILE=os.devnull,  # no pip.conf: no mirrors, find-links
        PIP_INDEX_URL=f'http://127.0.0.1:{_free_port()}/simple',
        PIP_RETRIES='0',
        PIP_TIMEOUT='5',
        PIP_DISABLE_PIP_VERSION_CHECK='1',
        **extra)
    return env


def _venv(path, hide=(), fake=()) -> str:
    """A virtualenv (no pip of its own) seeing this interpreter's
    site-packages except the distributions named in ``hide``, plus fake
    distribution metadata ``(name, version)``; returns its python."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(path)],
                   check=True)
    python = osp.join(str(path), 'bin', 'python')
    site = subprocess.run([
        python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'
    ],
                          capture_output=True,
                          text=True,
                          check=True).stdout.strip()
    hidden = set()
    for name in hide:
        dist = importlib.metadata.distribution(name)
        hidden |= {str(f).split('/')[0] for f in dist.files}
    view = osp.join(str(path), 'parent-site')
    os.makedirs(view)
    parent = sysconfig.get_path('purelib')
    for entry in os.listdir(parent):
        # this checkout's own editable install stays out as well
        if entry not in hidden and 'smt_mm' not in entry:
            os.symlink(osp.join(parent, entry), osp.join(view, entry))
    with open(osp.join(site, 'parent.pth'), 'w') as f:
        f.write(f'import site; site.addsitedir({view!r})\n')
    for name, version in fake:
        info = osp.join(site, f'{name}-{version}.dist-info')
        os.makedirs(info)
        with open(osp.join(info, 'METADATA'), 'w') as f:
            f.write(f'Metadata-Version: 2.1\nName: {name}\n'
                    f'Version: {version}\n')
    return python


def _install(python, env, cwd=REPO, script=INSTALL):
    return subprocess.run(['bash', script],
                          cwd=cwd,
                          env=dict(env, PYTHON=python),
                          capture_output=True,
                          text=True,
                          timeout=1800)


def test_refuses_a_torch_outside_the_supported_range(tmp_path):
    python = _venv(tmp_path / 'venv', fake=[('torch', '2.4.0')])
    proc = _install(python, _offline_env())
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'torch 2.4.0 is installed; SMT-MM supports torch 2.11-2.13: install '
        'one of those (with its torchvision) first, or use a fresh '
        'virtualenv, where this script installs torch 2.13.0'
    ]
    assert proc.stdout == ''  # refused before pip ran at all


def test_keeps_a_supported_torch_and_asks_for_its_torchvision(tmp_path):
    # A supported torch other than this environment's "installed"
    # (metadata ahead of this interpreter's torch), without its torchvision:
    # the script keeps that torch and asks pip for its torchvision, which
    # the empty wheelhouse does not have.
    own = importlib.metadata.version('torch').split('+')[0]
    torch = '2.12.0' if own.startswith('2.11.') else '2.11.0'
    vision = '0.27' if torch == '2.12.0' else '0.26'
    python = _venv(tmp_path / 'venv', fake=[('torch', torch)])
    (tmp_path / 'wheels').mkdir()
    proc = _install(python, _offline_env(WHEELHOUSE=str(tmp_path / 'wheels')))
    assert proc.returncode == 1
    assert f'keeping the installed torch {torch} (supported: 2.11-2.13)' \
        in proc.stdout
    assert f'Requirement already satisfied: torch=={torch}' in proc.stdout
    assert f'No matching distribution found for torchvision=={vision}.*' \
        in proc.stderr
    assert 'Looking in indexes' not in proc.stdout + proc.stderr


def _metadata_wheel(out_dir, name, version) -> None:
    """A wheel holding only the metadata of ``name`` ``version``."""
    info = f'{name}-{version}.dist-info'
    files = {
        f'{info}/METADATA':
        f'Metadata-Version: 2.1\nName: {name}\n'
        f'Version: {version}\n',
        f'{info}/WHEEL':
        'Wheel-Version: 1.0\nGenerator: test\n'
        'Root-Is-Purelib: true\nTag: py3-none-any\n',
    }
    with zipfile.ZipFile(
            osp.join(str(out_dir), f'{name}-{version}-py3-none-any.whl'),
            'w') as wheel:
        for arcname, text in files.items():
            wheel.writestr(arcname, text)
        wheel.writestr(
            f'{info}/RECORD',
            ''.join(f'{a},,\n' for a in files) + f'{info}/RECORD,,\n')


def test_offline_without_torch_takes_the_wheelhouse_torch(tmp_path):
    # no torch in the virtualenv; the wheelhouse (a folder whose name has a
    # space: pip splits its find-links setting on whitespace) holds torch
    # 2.12.0 and its torchvision 0.27.0 (metadata only), not the default
    python = _venv(tmp_path / 'venv', hide=['torch', 'torchvision'])
    wheels = tmp_path / 'my wheels'
    wheels.mkdir()
    _metadata_wheel(wheels, 'torch', '2.12.0')
    _metadata_wheel(wheels, 'torchvision', '0.27.0')
    _metadata_wheel(wheels, 'torchvision', '0.28.0')
    proc = _install(python, _offline_env(WHEELHOUSE=str(wheels)))
    out = proc.stdout + proc.stderr
    assert 'Successfully installed torch-2.12.0' in out
    assert 'keeping the installed torch 2.12.0 (supported: 2.11-2.13)' in out
    assert 'Successfully installed torchvision-0.27.0' in out
    assert 'Looking in indexes' not in out
    # (metadata without code: the install stops at mmcv, which needs torch)
    assert proc.returncode == 1


def test_bad_wheelhouse_and_mmcv_wheel_are_one_line(tmp_path):
    python = _venv(tmp_path / 'venv')
    missing = str(tmp_path / 'nowhere')
    for var, message in [
        ('WHEELHOUSE', f'WHEELHOUSE={missing} is not a folder: give the '
         "folder of wheels built as the README's offline install says"),
        ('MMCV_WHEEL', f'MMCV_WHEEL={missing} is not a file: give the path '
         'of an mmcv-2.1.0-*.whl built against the installed torch'),
    ]:
        proc = _install(python, _offline_env(**{var: missing}))
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [message]


def _wheel_of_installed(name, out_dir) -> str:
    """A wheel of an installed pure-Python distribution, packed from its
    files (this machine may have no network to download one)."""
    dist = importlib.metadata.distribution(name)
    info = next(
        str(f).split('/')[0] for f in dist.files
        if str(f).split('/')[0].endswith('.dist-info'))
    skip = {'INSTALLER', 'REQUESTED', 'RECORD', 'direct_url.json'}
    files = [
        f for f in dist.files if not str(f).startswith('..')
        and '__pycache__' not in str(f) and f.name not in skip
    ]
    path = osp.join(
        str(out_dir), f'{info[:-len(".dist-info")]}-py3-none-any.whl')
    record = []
    with zipfile.ZipFile(path, 'w') as wheel:
        for f in files:
            data = f.read_binary()
            digest = base64.urlsafe_b64encode(
                hashlib.sha256(data).digest()).rstrip(b'=').decode()
            wheel.writestr(str(f), data)
            record.append(f'{f},sha256={digest},{len(data)}')
        record.append(f'{info}/RECORD,,')
        wheel.writestr(f'{info}/RECORD', '\n'.join(record) + '\n')
    return path


def _copy_checkout(dst) -> str:
    """The files an install reads, copied (the editable install writes
    into the checkout it installs)."""
    os.makedirs(dst)
    for name in ('setup.py', 'README.md', 'model-index.yml'):
        shutil.copy(osp.join(REPO, name), dst)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim',
                                    '*.egg-info')
    for name in ('requirements', 'tools', 'configs', 'smt_mm'):
        shutil.copytree(
            osp.join(REPO, name), osp.join(dst, name), ignore=ignore)
    return str(dst)


@pytest.mark.slow
def test_offline_install_from_a_wheelhouse(tmp_path):
    """ftfy (a runtime requirement) is hidden from the virtualenv; the
    wheelhouse holds it. With the index unreachable the install succeeds
    from the wheelhouse, and fails without it."""
    checkout = _copy_checkout(tmp_path / 'checkout')
    script = osp.join(checkout, 'tools', 'install.sh')
    python = _venv(tmp_path / 'venv', hide=['ftfy'])
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    _wheel_of_installed('ftfy', wheels)
    probe = [python, '-c', 'import ftfy']
    assert subprocess.run(probe, capture_output=True).returncode != 0

    online = _install(python, _offline_env(), checkout, script)
    assert online.returncode != 0, 'installed without the wheelhouse'
    assert 'No matching distribution found for ftfy' in online.stderr

    proc = _install(python, _offline_env(WHEELHOUSE=str(wheels)), checkout,
                    script)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert f'offline install: only the wheels in {wheels}, no index' in out
    assert 'Looking in indexes' not in out
    assert 'Successfully installed ftfy' in out
    assert proc.stdout.strip().splitlines()[-1] == 'SMT-MM 0.1.0 installed'
    where = subprocess.run(
        [python, '-c', 'import ftfy, smt_mm; print(smt_mm.__file__)'],
        capture_output=True,
        text=True,
        cwd=str(tmp_path))
    assert where.stdout.strip() == osp.join(checkout, 'smt_mm',
                                            '__init__.py'), where.stderr


def _requirement_files(name, seen=None):
    """``requirements/<name>`` and every file it includes with ``-r``."""
    seen = set() if seen is None else seen
    seen.add(name)
    with open(osp.join(REPO, 'requirements', name)) as f:
        for line in f:
            if line.startswith('-r '):
                _requirement_files(line[3:].split('#')[0].strip(), seen)
    return seen


def test_runtime_install_leaves_out_the_test_tools():
    """install.sh installs what the tools need; the test and style tools
    come with the README's test command (requirements/tests.txt), which
    also covers everything the tests run."""
    with open(INSTALL) as f:
        installed = {
            name
            for line in f if 'pip_install' in line
            for name in _names_after_r(line)
        }
    reached = set()
    for name in installed:
        _requirement_files(name, reached)
    assert 'tools.txt' in reached and 'runtime.txt' in reached
    assert 'tests.txt' not in reached
    assert _requirement_files('tests.txt') >= {'tools.txt', 'timm.txt'}
    with open(osp.join(REPO, 'README.md')) as f:
        assert 'pip install -r requirements/tests.txt && python -m pytest' \
            in f.read()


def _names_after_r(line):
    words = line.split()
    return [
        words[i + 1].split('/')[-1] for i, word in enumerate(words[:-1])
        if word == '-r'
    ]
