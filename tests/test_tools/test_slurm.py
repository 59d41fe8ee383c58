"""tools/slurm_{train,test}.sh build the srun command line OpenMMLab users
expect (checked with a fake srun), and --launcher slurm runs on CPU."""
import os
import subprocess

import pytest
import torch
from helpers import REPO

FAKE_SRUN = '''#!/usr/bin/env bash
# Records its arguments (one per line) and a few variables, runs nothing.
printf '%s\\n' "$@" > "$SRUN_LOG"
echo "MASTER_PORT=${MASTER_PORT:-}" > "$SRUN_LOG.env"
echo "PYTHONPATH=${PYTHONPATH:-}" >> "$SRUN_LOG.env"
'''


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_scripts_parse(script):
    subprocess.run(['bash', '-n', f'tools/{script}'], cwd=REPO, check=True)


def fake_srun(tmp_path, script, *args, **env):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    log = tmp_path / 'srun.log'
    full_env = dict(
        os.environ,
        PATH=f'{bin_dir}:{os.environ["PATH"]}',
        SRUN_LOG=str(log),
        **env)
    proc = subprocess.run(['bash', f'tools/{script}', *args],
                          cwd=REPO,
                          env=full_env,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    env_log = log.with_suffix('.log.env')
    return log.read_text().splitlines(), env_log.read_text()


def test_slurm_train_command(tmp_path):
    config = 'configs/det/smt_b_maskrcnn_3x.py'
    argv, env = fake_srun(
        tmp_path,
        'slurm_train.sh',
        'gpu-part',
        'smt_b',
        config,
        'work_dirs/b3x',
        '--amp',
        GPUS='16',
        SRUN_ARGS='--qos=high --time=1',
        PORT='29777')
    assert argv[:2] == ['-p', 'gpu-part']
    for option in ('--job-name=smt_b', '--gres=gpu:8', '--ntasks=16',
                   '--ntasks-per-node=8', '--cpus-per-task=5', '--qos=high',
                   '--time=1'):
        assert option in argv, option
    python_at = argv.index('-u') - 1
    assert argv[python_at + 2].endswith('tools/train.py')
    assert argv[python_at + 3:] == [
        config, '--work-dir=work_dirs/b3x', '--launcher=slurm', '--amp'
    ]
    assert 'MASTER_PORT=29777' in env
    assert REPO in env


def test_slurm_test_command(tmp_path):
    config = 'configs/seg/smt_s_upernet_160k_ade20k.py'
    argv, _ = fake_srun(
        tmp_path,
        'slurm_test.sh',
        'p1',
        'eval',
        config,
        'ckpt.pth',
        '--tta',
        GPUS='4',
        CPUS_PER_TASK='2')
    # Fewer GPUs than a node has: one node with GPUS tasks.
    for option in ('--gres=gpu:4', '--ntasks=4', '--ntasks-per-node=4',
                   '--cpus-per-task=2'):
        assert option in argv, option
    assert argv[-5].endswith('tools/test.py')
    assert argv[-4:] == [config, 'ckpt.pth', '--launcher=slurm', '--tta']


def test_usage_message(tmp_path):
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'p'],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 2 and 'usage:' in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU path only')
def test_slurm_launcher_on_cpu(monkeypatch):
    """One srun task without GPU: gloo group from srun's variables."""
    import torch.distributed as dist
    from mmengine.config import Config

    from smt_mm.launch.distributed import setup_distributed
    for key, value in dict(
            SLURM_PROCID='0',
            SLURM_NTASKS='1',
            SLURM_LOCALID='0',
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT='29653').items():
        monkeypatch.setenv(key, value)
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    cfg = Config(dict(model=dict(type='X', norm_cfg=dict(type='SyncBN'))))
    setup_distributed(cfg, 'slurm')
    try:
        assert dist.get_world_size() == 1 and dist.get_backend() == 'gloo'
        assert cfg.model.norm_cfg.type == 'BN'
        assert cfg.model_wrapper_cfg.device_ids is None
    finally:
        dist.destroy_process_group()


def test_slurm_launcher_without_srun(monkeypatch):
    from mmengine.config import Config

    from smt_mm.errors import LaunchError
    from smt_mm.launch.distributed import setup_distributed
    if torch.cuda.is_available():
        pytest.skip('CPU path only')
    monkeypatch.delenv('SLURM_PROCID', raising=False)
    with pytest.raises(LaunchError, match='SLURM_PROCID is not set'):
        setup_distributed(Config(dict(model=dict(type='X'))), 'slurm')
