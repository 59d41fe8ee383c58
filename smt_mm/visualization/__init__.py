# Copyright (c) SMT-MM contributors. All rights reserved.
"""Looking inside a trained SMT: modulation maps, attention maps and
effective receptive fields (``tools/analysis/vis_modulation.py``,
``tools/analysis/erf.py``).

Everything is read with forward hooks that are removed after each run, so
the model keeps no state. Nothing here is imported by ``import smt_mm``.
"""
