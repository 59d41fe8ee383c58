# Copyright (c) SMT-MM contributors. All rights reserved.
"""The ``SMTClassifier`` class. This module imports mmpretrain's models, so
``import smt_mm`` leaves it alone: :mod:`smt_mm.models.classifier`
registers the name and imports this module on first use (building the
model, or reading ``smt_mm.models.classifier.SMTClassifier``)."""
from typing import Dict

from mmpretrain.models import ImageClassifier

from smt_mm.checkpoint import check_load_in_hook
from .utils import is_official_state_dict, official_to_classifier


class SMTClassifier(ImageClassifier):
    """mmpretrain's ``ImageClassifier`` for SMT.

    Identical to ``ImageClassifier`` except in loading: an official SMT
    release file (state dict under ``model``, official key names) loads
    through any mmengine path, e.g. ``get_model(cfg, pretrained=
    'smt_tiny.pth')``: backbone keys are converted and the official
    ``head`` becomes ``head.fc``. Whatever loads it (mmengine's
    ``load_checkpoint`` included), the keys must fit and the weights be
    finite (:func:`smt_mm.checkpoint.check_load_in_hook`). SMT-MM's
    runner and tools load such files strictly too.

    Args:
        **kwargs: The arguments of mmpretrain's ``ImageClassifier``
            (``backbone``, ``neck``, ``head``, ``data_preprocessor``, ...).

    Examples:
        >>> from mmpretrain import get_model
        >>> import smt_mm
        >>> model = get_model('configs/cls/smt_t_in1k.py',
        ...                   pretrained='smt_tiny.pth')
        >>> from smt_mm.models.classifier import SMTClassifier
        >>> isinstance(model, SMTClassifier)
        True
    """

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        unpack_release_file(state_dict, prefix)
        check_load_in_hook(self, state_dict, prefix, 'the SMT classifier')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def unpack_release_file(state_dict: Dict, prefix: str) -> None:
    """Key fix: mmengine's ``load_checkpoint`` (behind mmpretrain's
    ``get_model(..., pretrained=...)``, ``init_model`` and the inferencers)
    passes a file without ``state_dict`` to the model as is. An official
    release file then arrives as one ``model`` entry; it is replaced in
    place, before the sub-modules read their keys, by the converted
    backbone and head weights. Its other top-level entries (``epoch``) are
    dropped.

    Args:
        state_dict (dict): What the loader passes to the classifier,
            changed in place.
        prefix (str): The classifier's prefix in its keys.
    """
    release = state_dict.get(f'{prefix}model')
    if not isinstance(release, dict) or not is_official_state_dict(release):
        return
    for key in [
            k for k in state_dict
            if k.startswith(prefix) and not hasattr(state_dict[k], 'shape')
    ]:
        del state_dict[key]
    state_dict.update(
        (prefix + k, v) for k, v in official_to_classifier(release).items())
