"""OpenMMLab's ``mim`` finds our model index, configs and tools for the
README's (editable) install: ``mim search / download / train / test
smt_mm``. The index itself is checked without mim."""
import glob
import importlib
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest
import yaml
from helpers import (REPO, assert_finite_losses, load_tool, run_tool,
                     train_log, write_tiny_det_config)

RELEASE = 'https://github.com/AFeng-x/SMT/releases/download/v1.0.0/'
# Which official release file each classification config is.
RELEASED = {
    'smt_t_in1k': 'smt_tiny.pth',
    'smt_s_in1k': 'smt_small.pth',
    'smt_b_in1k': 'smt_base.pth',
    'smt_l_in22k': 'smt_large_22k.pth',
    'smt_l_in22k-ft-in1k_224': 'smt_large_22k_224_ft.pth',
    'smt_l_in22k-ft-in1k_384': 'smt_large_22k_384_ft.pth',
}
HAS_MIM = importlib.util.find_spec('mim') is not None
needs_mim = pytest.mark.skipif(
    not HAS_MIM,
    reason='openmim is not installed (pip install -r requirements/mim.txt)')


def index_models():
    """Every model of model-index.yml, as the metafiles spell them."""
    with open(osp.join(REPO, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    models = []
    for metafile in metafiles:
        with open(osp.join(REPO, metafile)) as f:
            models += yaml.safe_load(f)['Models']
    return models


def mim(*args, cwd, check=True, env=None):
    """``python -m mim ARGS`` with this interpreter."""
    return run_tool([sys.executable, '-m', 'mim', *args],
                    cwd=str(cwd),
                    env=env,
                    check=check)


def test_index_is_well_formed():
    models = index_models()
    names = [m['Name'] for m in models]
    assert len(names) == len(set(names))
    for model in models:
        assert osp.isfile(osp.join(REPO, model['Config'])), model['Config']
        weights = model.get('Weights')
        assert weights is None or weights.startswith('https://'), weights
    weights = {m['Name']: m['Weights'] for m in models if m.get('Weights')}
    assert weights == {name: RELEASE + f for name, f in RELEASED.items()}


def require_installed_index():
    """Fail with the fix when the environment's install predates the
    editable-install fix (mim would look in site-packages)."""
    from mim.utils import get_installed_path
    found = get_installed_path('smt_mm')
    if not osp.isfile(osp.join(found, '.mim', 'model-index.yml')):
        pytest.fail(f'mim looks for smt_mm in {found}: reinstall the package '
                    '(pip install --no-build-isolation -e .)')
    return found


@needs_mim
def test_mim_search_lists_every_config(tmp_path):
    require_installed_index()
    dump = tmp_path / 'search.json'  # the table cuts long values short
    mim('search', 'smt_mm', '--json', str(dump), cwd=tmp_path)
    fields = json.loads(dump.read_text())
    assert sorted(fields['config']) == sorted(m['Name']
                                              for m in index_models())
    weights = {k: v for k, v in fields['weight'].items() if v}
    assert weights == {name: RELEASE + f for name, f in RELEASED.items()}
    assert fields['config']['smt_t_in1k'] == 'configs/cls/smt_t_in1k.py'


@needs_mim
def test_mim_download_takes_release_urls(tmp_path, monkeypatch):
    """What ``mim download smt_mm --config ...`` fetches and writes, with
    the network call replaced."""
    from mmengine.config import Config

    # the module, which mim.commands shadows with its function
    mim_download = importlib.import_module('mim.commands.download')
    require_installed_index()
    fetched = []

    def fake_download(url, path, **kwargs):
        fetched.append(url)
        with open(path, 'wb') as f:
            f.write(b'weights')

    monkeypatch.setattr(mim_download, 'download_from_file', fake_download)
    configs = ['smt_t_in1k', 'smt_l_in22k-ft-in1k_384']
    files = mim_download.download('smt_mm', configs, dest_root=str(tmp_path))
    assert fetched == [RELEASE + RELEASED[c] for c in configs]
    assert files == [RELEASED[c] for c in configs]
    dumped = Config.fromfile(str(tmp_path / 'smt_t_in1k.py'))
    assert dumped.model.backbone.type == 'SMT'
    assert dumped.model.backbone.arch == 'tiny'


@needs_mim
def test_mim_download_fails_on_the_network_only(tmp_path):
    """An unreachable proxy stands in for a machine without internet: the
    error is the connection, not the index (a bare file name used to make
    it ``MissingSchema``)."""
    require_installed_index()
    proxy = 'http://127.0.0.1:9'  # the discard port: nothing listens
    env = dict(HTTPS_PROXY=proxy, https_proxy=proxy, NO_PROXY='', no_proxy='')
    proc = mim(
        'download',
        'smt_mm',
        '--config',
        'smt_t_in1k',
        '--dest',
        str(tmp_path),
        cwd=tmp_path,
        check=False,
        env=env)
    assert proc.returncode != 0
    assert 'processing smt_t_in1k' in proc.stdout
    assert re.search(r'(ConnectionError|ProxyError)', proc.stderr), \
        proc.stderr[-3000:]
    for malformed in ('MissingSchema', 'InvalidURL', 'No scheme supplied'):
        assert malformed not in proc.stderr
    assert not (tmp_path / 'smt_tiny.pth').exists()


@needs_mim
def test_mim_finds_package_configs(tmp_path):
    """A bare config name is looked up in the package; tools/test.py then
    stops at the missing checkpoint."""
    require_installed_index()
    proc = mim(
        'test',
        'smt_mm',
        'smt_t_digits.py',
        '--checkpoint',
        str(tmp_path / 'missing.pth'),
        cwd=tmp_path,
        check=False)
    assert proc.returncode != 0
    expected = osp.join(REPO, 'configs', 'cls', 'smt_t_digits.py')
    assert f'will use {expected} instead' in proc.stdout
    assert 'missing.pth' in proc.stderr


@needs_mim
@pytest.mark.slow
def test_mim_train_and_test(tmp_path):
    """One training iteration and an evaluation of its checkpoint through
    ``mim train`` / ``mim test``, which run our tools/train.py and
    tools/test.py."""
    require_installed_index()
    config = write_tiny_det_config(
        tmp_path, num_train=2, batch_size=2, max_epochs=1)
    work = tmp_path / 'work'
    proc = mim(
        'train', 'smt_mm', config, '--work-dir', str(work), cwd=tmp_path)
    script = re.search(r'Training command is \S+ (\S+)', proc.stdout)
    assert osp.realpath(script.group(1)) == osp.join(REPO, 'tools', 'train.py')
    assert_finite_losses(train_log(work))
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    metrics = tmp_path / 'metrics.json'
    mim('test',
        'smt_mm',
        config,
        '--checkpoint',
        str(checkpoint),
        '--work-dir',
        str(tmp_path / 'test'),
        '--metrics-out',
        str(metrics),
        cwd=tmp_path)
    assert 'coco/bbox_mAP' in metrics.read_text()


def copy_source(dst):
    """The files a user's clone has (no build outputs, no .mim)."""
    ignore = shutil.ignore_patterns('.git', '.venv', 'venv', 'work_dirs',
                                    'data', 'build', '*.egg-info', '.mim',
                                    '__pycache__', '.pytest_cache')
    shutil.copytree(REPO, dst, ignore=ignore)


def make_venv(root):
    """A virtualenv that sees this interpreter's packages (mim, pip, the
    OpenMMLab stack) behind its own site-packages."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(root)],
                   check=True)
    python = str(root / 'bin' / 'python')
    site = glob.glob(str(root / 'lib' / 'python*' / 'site-packages'))[0]
    with open(osp.join(site, 'base.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    return python


@needs_mim
@pytest.mark.slow
@pytest.mark.parametrize(
    'editable', [True, False], ids=['editable', 'regular'])
def test_mim_search_after_fresh_install(tmp_path, editable):
    src = tmp_path / 'src'
    copy_source(src)
    python = make_venv(tmp_path / 'venv')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    subprocess.run([
        python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
        '-q', *(['-e'] if editable else []),
        str(src)
    ],
                   check=True,
                   env=env,
                   cwd=str(tmp_path))
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    where = subprocess.run([
        python, '-c', 'from mim.utils import get_installed_path; '
        "print(get_installed_path('smt_mm'))"
    ],
                           check=True,
                           env=env,
                           cwd=str(elsewhere),
                           capture_output=True,
                           text=True).stdout.strip()
    # editable: the copied checkout; regular: the venv's site-packages
    expected = str(src) if editable else str(tmp_path / 'venv')
    assert where.startswith(expected), where
    proc = subprocess.run([python, '-m', 'mim', 'search', 'smt_mm'],
                          env=env,
                          cwd=str(elsewhere),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'config id: smt_t_in1k' in proc.stdout


OFFLINE = dict(
    HTTPS_PROXY='http://127.0.0.1:9',  # the discard port: nothing listens
    https_proxy='http://127.0.0.1:9',
    NO_PROXY='',
    no_proxy='')


def test_download_tool_is_one_line_per_problem(tmp_path):
    """tools/download.py (also ``mim run smt_mm download``): offline, a
    model without released weights and an unknown name are one line each
    (``mim download`` stops inside mim with a TypeError for the first and
    an AttributeError for the second)."""
    proc = run_tool([
        sys.executable, 'tools/download.py', 'smt_t_in1k', 'smt_t_maskrcnn_1x',
        'smt_t_inlk', '--dest',
        str(tmp_path)
    ],
                    env=OFFLINE,
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    assert lines[0].startswith(f'error: cannot download checkpoint '
                               f'{RELEASE}smt_tiny.pth: ')
    assert lines[1].startswith('error: smt_t_maskrcnn_1x: no released '
                               'weights')
    assert 'smt_tiny.pth: python tools/download.py smt_t_in1k' in lines[1]
    assert lines[2] == ('error: smt_t_inlk: not a model of the SMT-MM model '
                        'index (did you mean smt_t_in1k, smt_s_in1k, '
                        'smt_l_in1k?)')
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_download_tool_writes_the_release_file(tmp_path, monkeypatch):
    tool = load_tool('tools/download.py')
    from smt_mm.checkpoint import reading
    fetched = []

    def fake_fetch(url, shown, out):
        fetched.append(url)
        out.write(b'weights')
        return 'digest'

    monkeypatch.setattr(reading, '_fetch', fake_fetch)
    tool.main([
        'smt_b_in1k', 'configs/cls/smt_s_in1k.py', '--dest',
        str(tmp_path / 'new')
    ])  # --dest is created
    assert fetched == [RELEASE + 'smt_base.pth', RELEASE + 'smt_small.pth']
    assert sorted(p.name for p in (tmp_path / 'new').iterdir()) == [
        'smt_base.pth', 'smt_small.pth'
    ]
    tool.main(['smt_b_in1k', '--dest', str(tmp_path / 'new')])  # kept
    assert len(fetched) == 2


@needs_mim
def test_mim_run_finds_the_download_tool(tmp_path):
    require_installed_index()
    proc = mim(
        'run',
        'smt_mm',
        'download',
        'smt_t_maskrcnn_3x',
        cwd=tmp_path,
        check=False)
    # mim adds its own traceback (CalledProcessError) when a script fails
    assert proc.returncode != 0
    assert 'error: smt_t_maskrcnn_3x: no released weights' in proc.stderr
