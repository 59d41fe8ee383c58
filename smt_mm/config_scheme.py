# Copyright (c) SMT-MM contributors. All rights reserved.
"""Make ``smt_mm::`` config paths resolve in mmengine.

Installing the package places ``configs/``, ``tools/`` and
``model-index.yml`` under ``smt_mm/.mim`` (``setup.py``), as the OpenMMLab
codebases do, so a config anywhere can inherit ours::

    _base_ = ['smt_mm::det/smt_b_maskrcnn_3x.py']

mmengine only accepts the package names it lists in ``MODULE2PACKAGE``;
:func:`register_config_package` (run on ``import smt_mm``) adds ours.
"""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .config_tree import walk_dicts

PACKAGE = 'smt_mm'
MODEL_INDEX = 'model-index.yml'


def register_config_package() -> None:
    """Let mmengine resolve ``smt_mm::PATH`` to ``smt_mm/.mim/configs/PATH``.

    mmengine looks the package up as a distribution first and, failing
    that, through the import system. The distribution's location is wrong
    for editable installs (site-packages instead of the checkout), so the
    name given is a module of the package, which is no distribution: the
    lookup then lands on the folder the running ``smt_mm`` was imported
    from, for editable, regular and PYTHONPATH installs alike.
    """
    from mmengine.config import utils
    utils.MODULE2PACKAGE.setdefault(PACKAGE, f'{PACKAGE}.version')


def resource_root() -> Optional[str]:
    """The folder holding ``model-index.yml`` and ``configs/`` for the
    running ``smt_mm``.

    That is the package's ``.mim`` folder once installed (copies, or links
    into the checkout for editable installs), else the checkout the package
    was imported from (``PYTHONPATH``); None when neither has the index.
    """
    package_dir = osp.dirname(osp.abspath(__file__))
    for root in (osp.join(package_dir, '.mim'), osp.dirname(package_dir)):
        if osp.isfile(osp.join(root, MODEL_INDEX)):
            return root
    return None


def drop_package_scope(cfg: Config) -> Config:
    """Remove the ``_scope_='smt_mm'`` marks of inherited config parts.

    mmengine tags every typed dict inherited through ``PACKAGE::`` with that
    package as registry scope. ``smt_mm`` has no registries of its own (the
    config's ``default_scope`` names the task), and with the tag a dataset
    or optimizer would be looked up in mmengine's root registries only.
    """
    for _, node, _ in walk_dicts(cfg._cfg_dict):
        if node.get('_scope_') == PACKAGE:
            del node['_scope_']
    return cfg
