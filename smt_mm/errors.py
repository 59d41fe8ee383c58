# Copyright (c) SMT-MM contributors. All rights reserved.
"""Errors that describe a problem the user has to fix.

The tools (``tools/train.py``, ``tools/test.py``) print such an error as one
line and exit non-zero instead of showing a traceback: the message names what
is wrong and what would be valid, which a traceback through mmengine's
registry and runner only buries. Everything else is a bug and keeps its
traceback.
"""


class SMTError(Exception):
    """Base of the errors the tools report as one line."""


class SMTConfigError(SMTError, ValueError):
    """An invalid setting or input; a ``ValueError`` for plain callers."""


class SMTConfigTypeError(SMTError, TypeError):
    """A setting of the wrong type; a ``TypeError`` for plain callers."""


class LaunchError(SMTError, RuntimeError):
    """A command-line or config problem the user has to fix."""


class CheckpointMismatchError(SMTError, RuntimeError):
    """A checkpoint does not fit the model it is loaded into."""


class CheckpointLoadError(SMTError, RuntimeError):
    """A checkpoint file is missing, unreadable or corrupt."""


class UnsafeCheckpointError(CheckpointLoadError):
    """A checkpoint holds objects whose unpickling could run code."""


class CorruptCheckpointError(CheckpointLoadError):
    """A checkpoint file is truncated or damaged."""
