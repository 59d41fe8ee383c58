# Copyright (c) SMT-MM contributors. All rights reserved.
"""ONNX export of a config's model and onnxruntime inference with the
config's preprocessing: what ``tools/deployment/export_onnx.py`` and
``tools/deployment/onnx_inference.py`` run.

Not imported by ``import smt_mm``: onnx and onnxruntime are optional (the
``deploy`` extra) and are imported inside the functions that need them,
which fail with the line that installs them.

Modules:

* :mod:`~smt_mm.deployment.shapes`: the input size to export at;
* :mod:`~smt_mm.deployment.preprocessing`: the data preprocessor, which
  the graph leaves out, done in numpy;
* :mod:`~smt_mm.deployment.exportable`: swaps that make a model export
  correctly (adaptive pools, attention);
* :mod:`~smt_mm.deployment.onnx_export`: the export itself, checked;
* :mod:`~smt_mm.deployment.onnx_graph`: edits of the written graph (size
  guard, known output sizes, metadata);
* :mod:`~smt_mm.deployment.onnx_check`: onnxruntime against PyTorch;
* :mod:`~smt_mm.deployment.onnx_runtime`: running a file on an image and
  reading its outputs.
"""
