# Copyright (c) SMT-MM contributors. All rights reserved.
"""Our classification configs in mmpretrain's model hub.

Imported by ``import smt_mm``, this module adds the models of
``configs/cls/metafile.yml`` to mmpretrain's ``ModelHub`` through its public
``register_model_index``, so that::

    import smt_mm
    from mmpretrain import get_model, list_models
    list_models('smt')          # ['smt_b_in1k', ..., 'smt_t_in1k']
    model = get_model('smt_t_in1k', pretrained='smt_t_converted.pth')

Only our names are added; mmpretrain's own entries are left alone (it still
registers them itself on first use). Configs are read when a model is
asked for, not here. ``pretrained=True`` takes the metafile's ``Weights``,
the URLs of the official release files (official key names, which the
classifier of ``configs/cls`` converts on loading).
"""
import os.path as osp
import warnings
from typing import List

from smt_mm.config_scheme import resource_root

# Only the classification metafile: detection and segmentation models do
# not build through mmpretrain.
CLS_METAFILE = osp.join('configs', 'cls', 'metafile.yml')


def register_model_hub() -> List[str]:
    """Add our classification models to mmpretrain's ``ModelHub``.

    Safe to call again: nothing is added while any of our names is there.

    Returns:
        list[str]: The names added by this call (empty when mmpretrain is
        not installed, the package has no model index, or they are there).
    """
    try:
        from mmpretrain.apis.model import ModelHub
    except ImportError:  # mmpretrain is optional for det/seg users
        return []
    root = resource_root()
    if root is None or not osp.isfile(osp.join(root, CLS_METAFILE)):
        return []
    names = _model_names(osp.join(root, CLS_METAFILE))
    present = [name for name in names if ModelHub.has(name)]
    if present:
        if len(present) < len(names):  # another package took our names
            warnings.warn(f'mmpretrain ModelHub already has {present}: '
                          'the smt_mm classification models are not added')
        return []
    # Config paths in the metafile are relative to the repository root.
    ModelHub.register_model_index(
        osp.join(root, CLS_METAFILE), config_prefix=root)
    return names


def _model_names(metafile: str) -> List[str]:
    """The (lower-case, as ModelHub keys them) model names of a metafile."""
    from modelindex.load_model_index import load
    index = load(metafile)
    return [model.name.lower() for model in index.models]


register_model_hub()
