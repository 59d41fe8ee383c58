# Copyright (c) SMT-MM contributors. All rights reserved.
"""Load the official SMT model file from a path, as a benchmark baseline.

The official ``models/smt.py`` (github AFeng-x/SMT) imports timm,
torchvision, ptflops and thop at module level although its model classes
only need ``DropPath``, ``to_2tuple`` and ``trunc_normal_``. This module
loads the file under a private module name with those imports answered by
small stand-ins (installed in ``sys.modules`` only while the file
executes), so the baseline runs without installing them. Nothing of the
official code is copied into this project: the file is read from the path
the user gives.

Example::

    official = load_official_module('/path/to/SMT/models/smt.py')
    model = build_official('tiny', official)
    ours = SMT('tiny', out_indices=(3, ))
    ours.load_state_dict(official_to_ours(model.state_dict(), ours))
"""
import importlib.util
import os.path as osp
import sys
import types
from contextlib import contextmanager
from typing import Dict

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from smt_mm.checkpoint import describe_mismatch
from smt_mm.errors import LaunchError
from smt_mm.models.utils.ckpt_convert import convert_official_state_dict

# official factory name of each preset
FACTORIES = dict(
    t='smt_t',
    tiny='smt_t',
    s='smt_s',
    small='smt_s',
    b='smt_b',
    base='smt_b',
    l='smt_l',
    large='smt_l')


def _pair(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def _stand_ins() -> Dict[str, types.ModuleType]:
    """Modules answering every import of the official file."""

    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    def unused(*args, **kwargs):
        raise RuntimeError('not available in the benchmark baseline')

    mods = [
        module('timm'),
        module('timm.models'),
        module('timm.data', create_transform=unused),
        module(
            'timm.models.layers',
            DropPath=DropPath,  # mmcv's, with timm's (drop_prob) signature
            to_2tuple=_pair,
            trunc_normal_=nn.init.trunc_normal_),
        module('timm.models.registry', register_model=lambda fn: fn),
        module('timm.models.vision_transformer', _cfg=lambda **kw: kw),
        module(
            'timm.data.constants',
            IMAGENET_DEFAULT_MEAN=(0.485, 0.456, 0.406),
            IMAGENET_DEFAULT_STD=(0.229, 0.224, 0.225)),
        module('timm.data.transforms', _pil_interp=unused),
        module('ptflops', get_model_complexity_info=unused),
        module('thop', profile=unused),
    ]
    try:  # the transforms are only used by helpers outside the model
        import torchvision  # noqa: F401
    except ImportError:
        mods += [module('torchvision'), module('torchvision.transforms')]
    return {m.__name__: m for m in mods}


@contextmanager
def _stubbed_imports():
    stand_ins = _stand_ins()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def load_official_module(path: str) -> types.ModuleType:
    """Execute the official ``models/smt.py`` at ``path``.

    Args:
        path: the official repository's ``models/smt.py``.

    Returns:
        The module; it defines ``SMT`` and the factories ``smt_t`` ...
        ``smt_l``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'official SMT model file not found: {path} (pass the path of '
            "the official repository's models/smt.py)")
    spec = importlib.util.spec_from_file_location('_official_smt', path)
    if spec is None:  # no loader for this file name (not *.py)
        raise LaunchError(f'{path} is not a Python file: pass the official '
                          "repository's models/smt.py")
    module = importlib.util.module_from_spec(spec)
    with _stubbed_imports():
        spec.loader.exec_module(module)
    if not hasattr(module, 'SMT'):
        raise ValueError(f'{path} defines no SMT class: not the official '
                         'models/smt.py')
    return module


def build_official(arch: str, module: types.ModuleType) -> nn.Module:
    """The official model of preset ``arch``, as its factory builds it.

    The official L factory leaves layer scale off (a bug its own release
    file trips over); it is switched on here so that L matches ours.

    Args:
        arch: a preset, short (``t``) or long (``tiny``).
        module: what :func:`load_official_module` returned.
    """
    factory = getattr(module, FACTORIES[arch])
    kwargs = dict(use_layerscale=True) if FACTORIES[arch] == 'smt_l' else {}
    return factory(**kwargs)


def official_to_ours(official_state: Dict[str, torch.Tensor],
                     model: nn.Module) -> Dict[str, torch.Tensor]:
    """The official state dict renamed for our ``SMT``, head dropped.

    Args:
        official_state: the official model's state dict.
        model: our ``SMT`` the result must fit exactly.

    Raises:
        KeyError: the renamed keys do not fit ``model``.
    """
    converted, _ = convert_official_state_dict(official_state)
    mismatch = describe_mismatch(model.state_dict(), converted)
    if mismatch:
        raise KeyError(f'official -> ours key mismatch: {mismatch}')
    return converted
