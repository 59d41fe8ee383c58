# Copyright (c) SMT-MM contributors. All rights reserved.
"""The tools start quiet: upstream warnings a user cannot act on (setuptools'
``pkg_resources is deprecated``, raised where mmengine imports it) are
filtered by name in ``run_cli``; a warning meant for the user still shows,
and ``import smt_mm`` changes no filter."""
import subprocess
import sys

from helpers import QUICKSTART, REPO, run_tool

PKG_RESOURCES = 'pkg_resources is deprecated'


def test_tool_stderr_is_the_error_line_only(monkeypatch):
    """A fresh Python (imports included): reading the config's mmdet base
    makes mmengine import pkg_resources; only our line reaches stderr."""
    monkeypatch.setenv('SMT_TESTS_FRESH_PYTHON', '1')
    proc = run_tool([
        sys.executable, 'tools/train.py', QUICKSTART, '--cfg-options',
        'train_cfg.max_epoch=1'
    ],
                    check=False)
    assert proc.returncode == 1
    assert PKG_RESOURCES not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        'error: --cfg-options train_cfg.max_epoch=1: the config has no '
        'train_cfg.max_epoch; did you mean train_cfg.max_epochs?'
    ], proc.stderr


def test_user_facing_warning_still_shows(monkeypatch):
    monkeypatch.setenv('SMT_TESTS_FRESH_PYTHON', '1')
    proc = run_tool([
        sys.executable, 'tools/misc/check_dataset.py', QUICKSTART,
        '--cfg-options', 'train_cfg.max_epoch=1'
    ],
                    env=dict(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1'),
                    check=False)
    assert 'UserWarning: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set' in \
        proc.stderr
    assert PKG_RESOURCES not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'error: --cfg-options train_cfg.max_epoch=1: the config has no')


def test_importing_smt_mm_adds_no_filter():
    # (torch and sympy add filters of their own when imported)
    code = ('import warnings, smt_mm, smt_mm.launch.cli; '
            'ours = [f for f in warnings.filters if f[1] is not None and '
            '"pkg_resources" in f[1].pattern]; '
            'assert not ours, ours')
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True)


def test_only_the_named_warnings_are_filtered():
    """In run_cli, by message, category and module: the same message from
    our own code, or another upstream warning, still shows."""
    import warnings

    from smt_mm.launch.cli import run_cli

    def main():
        for text, module in [(PKG_RESOURCES + ' as an API', 'mmengine.x'),
                             (PKG_RESOURCES + ' as an API', 'importlib'),
                             (PKG_RESOURCES + ' as an API', 'smt_mm.x'),
                             ('images without annotations', 'mmdet.x')]:
            warnings.warn_explicit(text, UserWarning, module, 1, module)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        run_cli(main)
    assert [(str(w.message), w.filename)
            for w in seen] == [(PKG_RESOURCES + ' as an API', 'smt_mm.x'),
                               ('images without annotations', 'mmdet.x')]
