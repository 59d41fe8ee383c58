# Copyright (c) SMT-MM contributors. All rights reserved.
"""What the tools build on: a config's model, ready to run."""
from .model import DEFAULT_INPUT_SHAPES, build_model

__all__ = ['DEFAULT_INPUT_SHAPES', 'build_model']
