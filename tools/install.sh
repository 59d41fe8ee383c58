#!/usr/bin/env bash
# Install SMT-MM and its OpenMMLab 2.x stack into the active Python
# environment (a fresh virtualenv is recommended):
#   torch 2.13 + torchvision 0.28 -> mmcv 2.1.0 built from source with ops
#   -> mmengine / mmdet / mmseg / mmpretrain (+ undeclared needs) -> smt_mm.
# Environment:
#   PYTHON      interpreter to install into (default: python3)
#   MMCV_WHEEL  a prebuilt mmcv 2.1.0 wheel for this torch, used instead of
#               building from source
#   MAX_JOBS    parallel compile jobs for mmcv (default: all cores)
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=...  GPU variant (see README)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install "$@"; }
mmcv_ops_work() {
  "$PY" - <<'PY' 2>/dev/null
import torch, mmcv
from mmcv.ops import nms
assert mmcv.__version__ == '2.1.0'
nms(torch.rand(4, 4) * 10, torch.rand(4), 0.5)
PY
}

pip_install -U pip
# torch first: mmcv's build compiles against it.
pip_install -r requirements/torch.txt
pip_install -r requirements/build.txt
if mmcv_ops_work; then
  echo "mmcv 2.1.0 with ops is already installed"
elif [ -n "${MMCV_WHEEL:-}" ]; then
  pip_install "$MMCV_WHEEL"
else
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  pip_install --no-build-isolation -r requirements/mmcv.txt
  if ! mmcv_ops_work; then
    # A wheel cached from a build against another torch lacks working ops.
    pip_install --no-build-isolation --no-cache-dir --force-reinstall \
      --no-deps -r requirements/mmcv.txt
  fi
fi
mmcv_ops_work || { echo "mmcv 2.1.0 ops do not load" >&2; exit 1; }
pip_install -r requirements/runtime.txt -r requirements/tests.txt
pip_install --no-build-isolation -e .
"$PY" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models, smt_mm; print('SMT-MM', smt_mm.__version__, 'installed')"
