"""Configs outside the repository inherit ours as ``smt_mm::TASK/NAME.py``
(the package's ``.mim`` folder), for the checkout in use and for fresh
regular and editable installs."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

import pytest
from helpers import REPO, run_tool

# A config per task that exists on disk; cls only once configs/cls has one.
CANDIDATES = {
    'det': 'smt_b_maskrcnn_3x.py',
    'seg': 'smt_s_upernet_160k_ade20k.py',
    'cls': 'smt_t_in1k.py',
}
TASKS = [(task, name) for task, name in CANDIDATES.items()
         if osp.isfile(osp.join(REPO, 'configs', task, name))]
RATE = 0.123

# Loads each user config, builds the model through the task's registry and
# prints the largest stochastic depth rate (the last block's = the setting).
CHECK = '''
import sys
import smt_mm
from mmengine.registry import init_default_scope
from smt_mm.launch.config import load_config
print('smt_mm from', smt_mm.__file__)
for path in sys.argv[1:]:
    cfg = load_config(path)
    scope = cfg.default_scope
    init_default_scope(scope)
    registry = __import__(scope + '.registry', fromlist=['MODELS']).MODELS
    model = registry.build(cfg.model)
    rate = max(m.drop_prob for m in model.modules() if hasattr(m, 'drop_prob'))
    print('RESULT', path, scope, cfg.model.backbone.drop_path_rate, rate)
'''


def write_user_configs(folder):
    paths = []
    for task, name in TASKS:
        path = osp.join(str(folder), f'my_{task}.py')
        with open(path, 'w') as f:
            f.write(f"_base_ = ['smt_mm::{task}/{name}']\n"
                    f'model = dict(backbone=dict(drop_path_rate={RATE}))\n')
        paths.append(path)
    return paths


def check_output(out, paths):
    results = [
        line.split() for line in out.splitlines() if line.startswith('RESULT')
    ]
    assert [r[1] for r in results] == paths
    for _, _, scope, cfg_rate, built_rate in results:
        assert scope in ('mmdet', 'mmseg', 'mmpretrain')
        assert float(cfg_rate) == RATE
        assert float(built_rate) == pytest.approx(RATE)


def test_mim_folder_of_checkout():
    import smt_mm
    mim = osp.join(osp.dirname(smt_mm.__file__), '.mim')
    if not osp.isdir(osp.join(mim, 'configs')):
        pytest.fail(f'{mim} has no configs: reinstall the package '
                    '(pip install --no-build-isolation -e .) to create it')
    for item in ('configs/det', 'configs/seg', 'model-index.yml',
                 'tools/train.py'):
        assert osp.exists(osp.join(mim, item)), item


def test_user_config_inherits_package_config(tmp_path):
    test_mim_folder_of_checkout()
    paths = write_user_configs(tmp_path)
    proc = run_tool([sys.executable, '-c', CHECK, *paths],
                    cwd=str(tmp_path),
                    env=dict(PYTHONPATH=REPO))
    check_output(proc.stdout, paths)


def test_package_scope_is_dropped(tmp_path):
    from mmengine.config import Config

    import smt_mm  # noqa: F401  (registers the smt_mm:: package)
    from smt_mm.launch.config import load_config
    test_mim_folder_of_checkout()
    path = write_user_configs(tmp_path)[0]
    raw = Config.fromfile(path)
    assert "'_scope_': 'smt_mm'" in str(raw._cfg_dict.to_dict())
    cfg = load_config(path)
    assert "'_scope_': 'smt_mm'" not in str(cfg._cfg_dict.to_dict())
    assert cfg.model.backbone.drop_path_rate == RATE


def copy_source(dst):
    """The files a user's clone has (no build outputs, no .mim)."""
    ignore = shutil.ignore_patterns('.git', '.venv', 'venv', 'work_dirs',
                                    'data', 'build', '*.egg-info', '.mim',
                                    '__pycache__', '.pytest_cache')
    shutil.copytree(REPO, dst, ignore=ignore)


@pytest.fixture()
def venv(tmp_path):
    """A virtualenv that sees this interpreter's packages, with its own
    site-packages first."""
    root = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(root)],
                   check=True)
    python = str(root / 'bin' / 'python')
    site = subprocess.run([
        python, '-c', 'import sysconfig; '
        "print(sysconfig.get_paths()['purelib'])"
    ],
                          check=True,
                          capture_output=True,
                          text=True).stdout.strip()
    with open(osp.join(site, 'base.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    return python


@pytest.mark.slow
@pytest.mark.parametrize(
    'editable', [False, True], ids=['regular', 'editable'])
def test_installed_package_configs(venv, tmp_path, editable):
    src = tmp_path / 'src'
    copy_source(src)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    subprocess.run([
        venv, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
        '-q', *(['-e'] if editable else []),
        str(src)
    ],
                   check=True,
                   env=env,
                   cwd=str(tmp_path))
    users = tmp_path / 'elsewhere'
    users.mkdir()
    paths = write_user_configs(users)
    proc = subprocess.run([venv, '-c', CHECK, *paths],
                          cwd=str(users),
                          env=env,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    origin = proc.stdout.splitlines()[0]
    # Editable: the code of the copied checkout; regular: the venv's copy.
    expected = str(src) if editable else osp.dirname(osp.dirname(venv))
    assert expected in origin, origin
    check_output(proc.stdout, paths)
