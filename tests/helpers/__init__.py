# Copyright (c) SMT-MM contributors. All rights reserved.
"""Shared test helpers: repository paths, the tiny test architecture, running
a tool, a tiny detection config on synthetic data."""
import glob
import math
import os
import os.path as osp
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from typing import Tuple

import pytest

from . import forkserver

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# the official repository's models/smt.py, for the tests that run it
OFFICIAL = os.environ.get('SMT_OFFICIAL', '')
# Official-format checkpoint of a small SMT and the official code's outputs
# for it (written by tools/misc/make_official_fixture.py).
FIXTURES = os.environ.get('SMT_FIXTURES',
                          osp.join(REPO, 'tests', 'data', 'official_fixture'))
sys.path.insert(0, REPO)
# The tiny architecture of the unit tests (4 stages, 16-128 channels; the
# tiny preset's other settings). An arch dict names every required setting:
# derive variants with dict(MINI_ARCH, depths=...).
MINI_ARCH = dict(
    embed_dims=[16, 32, 64, 128],
    depths=[1, 2, 3, 1],
    mlp_ratios=[4, 4, 4, 2],
    ca_num_heads=[4, 4, 4, -1],
    sa_num_heads=[-1, -1, 8, 16],
    ca_attentions=[1, 1, 1, 0],
    head_conv=3,
    expand_ratio=2,
    qkv_bias=True)


def one_block_per_stage(backbone_cfg) -> None:
    """Give a config's SMT one block per stage, in place: the widths (which
    necks and heads must fit) stay as configured, the compute of a one-step
    test drops to a fraction. The presets' full depths are what the size
    and parity tests check."""
    from smt_mm.models import SMT
    arch = backbone_cfg.arch
    arch = dict(SMT.arch_zoo[arch]) if isinstance(arch, str) else dict(arch)
    arch['depths'] = [1] * len(arch['depths'])
    backbone_cfg.arch = arch


def run_tool(args, cwd=REPO, timeout=900, env=None, check=True):
    """Run a command line tool; with ``check``, fail the test with its
    output when it exits non-zero. ``python tools/X.py ...`` runs in a
    process forked from a server that has the stack imported
    (``forkserver``); other command lines in a fresh process."""
    base_env = dict(os.environ, PYTHONUNBUFFERED='1')
    full_env = dict(base_env, **(env or {}))
    # a one-off environment read at start-up (``env=dict(PYTHONPATH=...)``)
    # gets a fresh Python rather than two server restarts
    if forkserver.can_fork(args, cwd) and forkserver.same_start(
            full_env, base_env):
        proc = forkserver.run(args, cwd, full_env, timeout)
    else:
        proc = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env)
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited {proc.returncode}\n'
                    f'--- stdout ---\n{proc.stdout[-4000:]}\n'
                    f'--- stderr ---\n{proc.stderr[-6000:]}')
    return proc


class DeadlineExceeded(BaseException):
    """Not an ``Exception``: code under test that turns every error into
    its own (one-line refusals) cannot swallow it."""


@contextmanager
def deadline(seconds):
    """Fail instead of hanging when the block runs past ``seconds``."""

    def expire(*_):
        raise DeadlineExceeded(f'still running after {seconds} s')

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def load_tool(path):
    """A tool's module (``path`` relative to the repository), imported in
    this process: its ``main`` raises the error ``run_cli`` would print."""
    import importlib.util
    name = 'tool_' + path.replace('/', '_')[:-3]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool_error(path, args) -> str:
    """The one-line error (an ``SMTError``) a tool's ``main`` raises for
    ``args``, run in this process: what ``run_cli`` prints after
    ``error:``. (A tool's exit status and stderr are tested through a real
    command line once per kind of failure; the messages need no new
    Python.)"""
    from smt_mm.errors import SMTError
    with pytest.raises(SMTError) as err:
        load_tool(path).main([str(a) for a in args])
    message = str(err.value)
    assert '\n' not in message, message
    return message


QUICKSTART = osp.join(REPO, 'configs/det/smt_t_maskrcnn_synth-quickstart.py')


def write_tiny_det_config(root,
                          num_train=8,
                          batch_size=2,
                          max_epochs=2,
                          extra=''):
    """A tiny Mask R-CNN + SMT config on synthetic 64x64 COCO images under
    ``root``; returns the config path. ``extra`` is appended verbatim."""
    from smt_mm.datasets.synthetic_coco import make_synthetic_coco
    root = str(root)
    make_synthetic_coco(
        root, num_train=num_train, num_val=2, seed=3, image_size=(64, 64))
    config = osp.join(root, 'tiny_det.py')
    arch = dict(MINI_ARCH, depths=[1, 1, 1, 1])
    with open(config, 'w') as f:
        f.write(f'''
_base_ = [{QUICKSTART!r}]
data_root = {root + '/'!r}
model = dict(backbone=dict(arch=dict(_delete_=True,
                                     **{arch!r})),
             neck=dict(in_channels=[16, 32, 64, 128]))
train_dataloader = dict(batch_size={batch_size}, num_workers=0,
                        persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={max_epochs}, val_interval=100)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=5))
{extra}
''')
    return config


def train_log(work_dir) -> str:
    """The text log of the newest run under ``work_dir``."""
    logs = glob.glob(osp.join(str(work_dir), '*', '*.log'))
    assert logs, f'no log under {work_dir}'
    return open(sorted(logs)[-1]).read()


def assert_finite_losses(log: str) -> None:
    """The log reports at least one loss, and every one is finite."""
    losses = [float(v) for v in re.findall(r'\bloss: ([-+.\deEnaif]+)', log)]
    assert losses and all(math.isfinite(v) for v in losses), log[-2000:]


def train_tiny_det(root, *args, extra='', env=None) -> Tuple[str, str]:
    """One iteration of the tiny Mask R-CNN config under ``root`` (with
    ``extra`` appended) through ``tools/train.py`` with ``args``; returns
    what the command printed and the run's text log."""
    config = write_tiny_det_config(
        root, num_train=2, batch_size=2, max_epochs=1, extra=extra)
    work = osp.join(str(root), 'work')
    proc = run_tool(
        [sys.executable, 'tools/train.py', config, '--work-dir', work, *args],
        env=env)
    return proc.stdout + proc.stderr, train_log(work)


def data_root_options(root) -> list:
    """``--cfg-options`` pointing every dataloader's dataset at ``root``."""
    return [
        f'{split}.dataset.data_root={root}'
        for split in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def to_official_key(key):
    """The inverse of the converter, written independently for the test."""
    m = re.match(r'stages\.(\d)\.(.*)', key)
    s, rest = int(m.group(1)) + 1, m.group(2)
    m = re.match(r'blocks\.(\d+)\.(.*)', rest)
    if m:
        j, rest = m.groups()
        rest = re.sub(r'^attn\.local_convs\.(\d)\.',
                      lambda x: f'attn.local_conv_{int(x.group(1)) + 1}.',
                      rest)
        rest = rest.replace('ffn.dwconv.', 'mlp.dwconv.dwconv.')
        rest = rest.replace('ffn.', 'mlp.')
        rest = re.sub(r'^gamma(\d)$', r'gamma_\1', rest)
        return f'block{s}.{j}.{rest}'
    rest = rest.replace('patch_embed.stem.conv.', 'conv.0.')
    rest = rest.replace('patch_embed.stem.bn.', 'conv.1.')
    if s == 1:
        rest = rest.replace('patch_embed.projection.', 'conv.3.')
    rest = rest.replace('patch_embed.projection.', 'proj.')
    if rest.startswith('norm.'):
        return f'norm{s}.{rest[5:]}'
    return f'patch_embed{s}.{rest[len("patch_embed."):]}' \
        if rest.startswith('patch_embed.') else f'patch_embed{s}.{rest}'


def write_fixture_cls_config(path,
                             arch,
                             num_classes,
                             data_root,
                             batch_size=8) -> str:
    """``configs/cls/smt_t_in1k.py`` with the fixture's architecture and
    head, testing on the ImageNet-format folder ``data_root``; written to
    ``path``, which is returned."""
    with open(path, 'w') as f:
        f.write(f'''
_base_ = [{osp.join(REPO, 'configs/cls/smt_t_in1k.py')!r}]
model = dict(backbone=dict(arch=dict(_delete_=True, **{arch!r})),
             head=dict(num_classes={num_classes},
                       in_channels={arch['embed_dims'][-1]}))
data_preprocessor = dict(num_classes={num_classes})
test_dataloader = dict(batch_size={batch_size}, num_workers=0,
                       persistent_workers=False,
                       dataset=dict(data_root={str(data_root)!r}))
test_evaluator = dict(topk=(1, 5))
''')
    return str(path)


def assert_picture(path, min_size=150):
    """A readable, non-uniform image at least ``min_size`` pixels a side."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as img:
        pixels = np.asarray(img.convert('RGB'))
    assert min(pixels.shape[:2]) >= min_size, (path, pixels.shape)
    assert pixels.std() > 5, f'uniform image {path}'


def decay_and_lr(model, optim_wrapper_cfg, scope='mmdet'):
    """{parameter name: (weight decay, lr)} of the optimizer that
    ``optim_wrapper_cfg`` builds for ``model``."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        optim = build_optim_wrapper(model, optim_wrapper_cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: (group['weight_decay'], group['lr'])
        for group in optim.optimizer.param_groups
        for p in group['params']
    }
