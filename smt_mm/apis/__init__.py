# Copyright (c) SMT-MM contributors. All rights reserved.
"""What the tools build on: a config's model, ready to run."""
from .dataset_meta import class_names, config_dataset_meta
from .model import DEFAULT_INPUT_SHAPES, build_model

__all__ = [
    'DEFAULT_INPUT_SHAPES', 'build_model', 'class_names', 'config_dataset_meta'
]
