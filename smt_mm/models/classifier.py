# Copyright (c) SMT-MM contributors. All rights reserved.
"""The classifier of ``configs/cls``: mmpretrain's ``ImageClassifier`` that
also takes an official SMT release file as a whole-model checkpoint."""
import functools

from mmengine.registry import MODELS

from .utils import is_official_state_dict, official_to_classifier


@functools.lru_cache(maxsize=None)
def _classifier_class():
    # mmpretrain's models are imported on first use only: detection and
    # segmentation runs import smt_mm too
    from mmpretrain.models import ImageClassifier

    class SMTClassifier(ImageClassifier):
        __doc__ = _DOC

        def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
            _unpack_release_file(state_dict, prefix)
            super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    return SMTClassifier


def _unpack_release_file(state_dict, prefix: str) -> None:
    """Key fix: mmengine's ``load_checkpoint`` (behind mmpretrain's
    ``get_model(..., pretrained=...)``, ``init_model`` and the inferencers)
    passes a file without ``state_dict`` to the model as is. An official
    release file then arrives as one ``model`` entry; it is replaced in
    place, before the sub-modules read their keys, by the converted
    backbone and head weights. Its other top-level entries (``epoch``) are
    dropped."""
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


_DOC = """mmpretrain's ``ImageClassifier`` for SMT.

    Identical to ``ImageClassifier`` except that an official SMT release
    file (state dict under ``model``, official key names) loads through any
    mmengine path, e.g. ``get_model(cfg, pretrained='smt_tiny.pth')``:
    backbone keys are converted and the official ``head`` becomes
    ``head.fc``. SMT-MM's runner also loads such files strictly.

    Examples:
        >>> from mmpretrain import get_model
        >>> import smt_mm
        >>> model = get_model('configs/cls/smt_t_in1k.py',
        ...                   pretrained='smt_tiny.pth')
    """


@MODELS.register_module(name='SMTClassifier')
def build_smt_classifier(**kwargs):
    """Build an ``SMTClassifier`` (the class is created on first use)."""
    return _classifier_class()(**kwargs)
