# Copyright (c) SMT-MM contributors. All rights reserved.
"""Helpers of the SMT-MM tools (command line, configs, distributed set-up,
resume, dataset checks, runner) and of the synthetic datasets.

``import smt_mm`` imports ``model_hub`` (SMT's models in mmpretrain's
``get_model``) and ``package`` (``smt_mm::`` config paths) from here; the
tools import the other modules they use.
"""
