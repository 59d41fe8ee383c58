# Copyright (c) SMT-MM contributors. All rights reserved.
"""The classifier of ``configs/cls``: ``type='SMTClassifier'``,
mmpretrain's ``ImageClassifier`` that also takes an official SMT release
file as a whole-model checkpoint.

The class lives in :mod:`smt_mm.models.image_classifier`, which imports
mmpretrain's models; detection and segmentation runs import ``smt_mm`` too,
so that module is imported on first use only: when a config builds the
model, or when ``SMTClassifier`` is read from this module::

    from smt_mm.models.classifier import SMTClassifier
"""
from mmengine.registry import MODELS

# not SMTClassifier: a star import would import mmpretrain's models
__all__ = ['build_smt_classifier']


@MODELS.register_module(name='SMTClassifier')
def build_smt_classifier(**kwargs):
    """Build an :class:`~smt_mm.models.image_classifier.SMTClassifier`.

    Registered as ``SMTClassifier``, so that configs name the class while
    mmpretrain's models are imported only when one is built.

    Args:
        **kwargs: The classifier's arguments (``backbone``, ``neck``,
            ``head``, ...).

    Examples:
        >>> from mmpretrain.registry import MODELS
        >>> import smt_mm
        >>> model = MODELS.build(dict(
        ...     type='SMTClassifier',
        ...     backbone=dict(type='SMT', arch='tiny', out_indices=(3, )),
        ...     neck=dict(type='GlobalAveragePooling'),
        ...     head=dict(type='LinearClsHead', num_classes=10,
        ...               in_channels=512)))
        >>> type(model).__name__
        'SMTClassifier'
    """
    from .image_classifier import SMTClassifier
    return SMTClassifier(**kwargs)


def __getattr__(name: str):
    """``SMTClassifier``, imported on first use (PEP 562)."""
    if name == 'SMTClassifier':
        from .image_classifier import SMTClassifier
        return SMTClassifier
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
