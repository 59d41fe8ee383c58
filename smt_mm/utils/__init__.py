# Copyright (c) SMT-MM contributors. All rights reserved.
"""Helpers of the SMT-MM tools (command line, configs, distributed set-up,
resume, dataset checks, runner) and of the synthetic datasets.

Nothing here is imported by ``import smt_mm``: the tools import the modules
they use.
"""
