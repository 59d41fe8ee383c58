# Copyright (c) SMT-MM contributors. All rights reserved.
"""What the tools share to start a job: the command line (:mod:`.cli`), the
config and the edits the tools make to it (:mod:`.config`), distributed
set-up (:mod:`.distributed`), the work dir and its lock (:mod:`.workdir`),
resuming (:mod:`.resume`), building the runner (:mod:`.runner`), the
progress lines of a multi-step job (:mod:`.progress`) and upstream
OpenMMLab tools run on our configs (:mod:`.upstream`,
``python -m smt_mm.launch.upstream``).

``import smt_mm`` does not import this package; the tools import the
modules they use.
"""
