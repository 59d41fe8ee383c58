# Copyright (c) SMT-MM contributors. All rights reserved.
"""Deprecated: moved to smt_mm.checks.dataset (see smt_mm.utils)."""
from smt_mm.utils import alias

alias(__spec__.name, __name__)
