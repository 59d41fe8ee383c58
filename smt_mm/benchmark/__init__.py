# Copyright (c) SMT-MM contributors. All rights reserved.
"""Speed and memory of the SMT backbone against the official code.

``tools/analysis/benchmark.py`` is the command line over this package:

* :mod:`.official` loads the official ``models/smt.py`` from a path;
* :mod:`.sides` builds the compared models (``fast``, ``official``,
  ``compiled``) on the same weights and checks they agree;
* :mod:`.timing` times them interleaved; :mod:`.memory` measures peaks
  (on the CPU in worker processes, ``python -m smt_mm.benchmark.memory``);
* :mod:`.report` turns the rows into ratios and a markdown table;
* :mod:`.run` measures everything a :class:`~.run.Settings` asks for.

``import smt_mm`` does not import this package, and this file imports none
of its modules: the memory worker runs as ``-m`` without being imported
twice.
"""
