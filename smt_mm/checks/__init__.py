# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks before a run, each one line instead of a traceback: a config's
model (:mod:`.config`), its optimizer settings (:mod:`.optim`), a run's
settings (:mod:`.run`), the data a config points at (:mod:`.dataset`) and
the machine (:mod:`.machine`, behind ``tools/misc/selfcheck.py``).

``import smt_mm`` does not import this package.
"""
