#!/usr/bin/env bash
# Install SMT-MM and its OpenMMLab 2.x stack into the active Python
# environment (a fresh virtualenv is recommended):
#   torch 2.11-2.13 (an installed one in that range is kept; else 2.13.0)
#   + its torchvision -> mmcv 2.1.0 built against it with ops
#   -> mmengine / mmdet / mmseg / mmpretrain (+ undeclared needs) -> the
#   optional tools' needs (requirements/tools.txt) -> smt_mm. The test and
#   style tools are not installed: pip install -r requirements/tests.txt
# Environment:
#   PYTHON      interpreter to install into (default: python3; 3.10-3.13)
#   MMCV_WHEEL  a prebuilt mmcv 2.1.0 wheel for this torch and Python, used
#               instead of building from source
#   WHEELHOUSE  a folder of wheels (see README): install from it alone
#               (pip --no-index --find-links WHEELHOUSE), no network needed;
#               without an installed torch, the wheelhouse's torch 2.11-2.13
#   MAX_JOBS    parallel compile jobs for mmcv (default: all cores)
#   MMCV_WHEEL_DIR  where the GPU variant keeps the mmcv wheel it builds
#               (default: build/wheels)
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=...  GPU variant (see README): builds
#               mmcv's CUDA ops; without CUDA_HOME it takes the compiler from
#               PyPI's cuda-toolkit of torch's CUDA version (only a driver is
#               needed on the machine, and none to compile)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
GPU=${FORCE_CUDA:-0}
pip_install() { "$PY" -m pip install "$@"; }
"$PY" - <<'PY'
import sys
if not (3, 10) <= sys.version_info[:2] <= (3, 13):
    sys.exit(f'{sys.executable} is Python {sys.version.split()[0]}; SMT-MM '
             'installs on Python 3.10-3.13: use a virtualenv of one of them')
PY
if [ -n "${WHEELHOUSE:-}" ]; then
  if [ ! -d "$WHEELHOUSE" ]; then
    echo "WHEELHOUSE=$WHEELHOUSE is not a folder: give the folder of wheels" \
      "built as the README's offline install says" >&2
    exit 2
  fi
  # every pip call below, builds included: this folder only, no index
  # (as a file:// URL: pip splits the setting on whitespace in paths)
  wheelhouse=$(cd "$WHEELHOUSE" && pwd)
  PIP_FIND_LINKS=$("$PY" -c 'import pathlib, sys
print(pathlib.Path(sys.argv[1]).as_uri())' "$wheelhouse")
  export PIP_NO_INDEX=1 PIP_FIND_LINKS
  echo "offline install: only the wheels in $wheelhouse, no index"
fi
if [ -n "${MMCV_WHEEL:-}" ] && [ ! -f "$MMCV_WHEEL" ]; then
  echo "MMCV_WHEEL=$MMCV_WHEEL is not a file: give the path of an" \
    "mmcv-2.1.0-*.whl built against the installed torch" >&2
  exit 2
fi
installed_version() {
  "$PY" -c "from importlib.metadata import version; print(version('$1'))"
}
mmcv_ops_work() {
  GPU=$GPU "$PY" - <<'PY' 2>/dev/null
import os, torch, mmcv
from mmcv.ops import get_compiling_cuda_version, nms
assert mmcv.__version__ == '2.1.0'
nms(torch.rand(4, 4) * 10, torch.rand(4), 0.5)
if os.environ['GPU'] == '1':  # the ops must have been compiled with CUDA
    assert get_compiling_cuda_version() != 'not available'
    if torch.cuda.is_available():
        nms(torch.rand(4, 4).cuda() * 10, torch.rand(4).cuda(), 0.5)
PY
}
use_pypi_cuda_compiler() {
  # nvcc, headers and CCCL of the cuda-toolkit release torch was built with
  local major version
  major=$("$PY" -c "import torch; print((torch.version.cuda or '').split('.')[0])")
  if [ -z "$major" ]; then
    echo "FORCE_CUDA=1: the installed torch has no CUDA support" >&2; exit 1
  fi
  version=$(installed_version cuda-toolkit)
  pip_install "cuda-toolkit[nvcc,cccl]==$version"
  # Some cuda-toolkit releases (13.0.2, which torch 2.11 pulls) pin nvcc but
  # not the nvvm / crt it runs: pip then takes their newest (13.5), whose
  # PTX this ptxas refuses ("Unsupported .version"). Hold them to nvcc's.
  local nvcc_version
  nvcc_version=$(installed_version nvidia-cuda-nvcc)
  pip_install "nvidia-nvvm==$nvcc_version.*" "nvidia-cuda-crt==$nvcc_version.*"
  CUDA_HOME=$("$PY" -c "import os, nvidia; print(next(p for p in (os.path.join(d, 'cu$major') for d in nvidia.__path__) if os.path.isdir(p)))")
  export CUDA_HOME PATH="$CUDA_HOME/bin:$PATH"
  # The wheel ships libcudart.so.$major only; the linker's -lcudart needs
  # the unversioned name: give it one outside site-packages.
  local links
  links=$(mktemp -d)
  ln -s "$CUDA_HOME/lib/libcudart.so.$major" "$links/libcudart.so"
  export LIBRARY_PATH="$links${LIBRARY_PATH:+:$LIBRARY_PATH}"
  echo "compiling mmcv's CUDA ops with $("$CUDA_HOME/bin/nvcc" --version | tail -1)"
}

# What to do about torch: "install" (none is installed) or "keep TORCH_REQ
# TORCHVISION_REQ" (an installed torch of the supported range, with the
# torchvision of its release: 2.11 -> 0.26, 2.12 -> 0.27, 2.13 -> 0.28).
torch_plan() {
  "$PY" - <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version


def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


torch, vision = installed('torch'), installed('torchvision')
if torch is None:
    print('install')
    sys.exit()
major, minor = (int(part) for part in torch.split('+')[0].split('.')[:2])
if not (2, 11) <= (major, minor) <= (2, 13):
    sys.exit(f'torch {torch} is installed; SMT-MM supports torch 2.11-2.13: '
             'install one of those (with its torchvision) first, or use a '
             'fresh virtualenv, where this script installs torch 2.13.0')
release = f'0.{minor + 15}'
if vision and vision.split('+')[0].split('.')[:2] == release.split('.'):
    print(f'keep torch=={torch} torchvision=={vision}')
else:
    print(f'keep torch=={torch} torchvision=={release}.*')
PY
}

plan=$(torch_plan)  # before anything is installed: may refuse the torch
pip_install -U pip  # offline: the wheelhouse's pip, when it holds one
# torch first: mmcv's build compiles against it.
if [ "$plan" = install ] && [ -n "${WHEELHOUSE:-}" ]; then
  # the supported torch the wheelhouse holds, then its torchvision below
  pip_install "torch>=2.11,<2.14"
  plan=$(torch_plan)
fi
if [ "$plan" = install ]; then
  pip_install -r requirements/torch.txt
else
  read -r _ torch_req vision_req <<<"$plan"
  echo "keeping the installed ${torch_req/==/ } (supported: 2.11-2.13)"
  pip_install "$torch_req" "$vision_req"
fi
# Nothing installed after this point may replace that torch.
keep=$(mktemp)
trap 'rm -f "$keep"' EXIT
"$PY" -c "from importlib.metadata import version
for name in ('torch', 'torchvision'):
    print(f'{name}=={version(name)}')" >"$keep"
pip_install -r requirements/build.txt
if mmcv_ops_work; then
  echo "mmcv 2.1.0 with ops is already installed"
elif [ -n "${MMCV_WHEEL:-}" ]; then
  pip_install -c "$keep" "$MMCV_WHEEL"
elif [ "$GPU" = 1 ]; then
  if [ -z "${CUDA_HOME:-}" ] || [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
    use_pypi_cuda_compiler
  fi
  # A wheel kept for MMCV_WHEEL= on other machines with this torch; built
  # outside pip's wheel cache, which a CPU install must never pick up.
  wheels=${MMCV_WHEEL_DIR:-build/wheels}
  rm -f "$wheels"/mmcv-2.1.0-*.whl
  # pip shows no progress while it builds: say what to expect (measured)
  echo "building mmcv 2.1.0 for CUDA archs '${TORCH_CUDA_ARCH_LIST:-of this machine}' with" \
    "${MAX_JOBS:-$(nproc)} jobs: 37 min for '8.0;9.0' with 2 jobs on a 2-core VM"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel \
    --no-build-isolation --no-cache-dir --no-deps -w "$wheels" \
    -r requirements/mmcv.txt
  pip_install --force-reinstall --no-deps "$wheels"/mmcv-2.1.0-*.whl
  pip_install -c "$keep" -r requirements/mmcv.txt  # its Python dependencies
  echo "mmcv wheel with CUDA ops: $(ls "$wheels"/mmcv-2.1.0-*.whl)"
else
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  pip_install -c "$keep" --no-build-isolation -r requirements/mmcv.txt
  if ! mmcv_ops_work; then
    # A wheel cached from a build against another torch lacks working ops.
    # (--no-binary: a wheelhouse's wheel for another torch is no answer)
    pip_install --no-build-isolation --no-cache-dir --force-reinstall \
      --no-deps --no-binary mmcv -r requirements/mmcv.txt
  fi
fi
mmcv_ops_work || {
  echo "mmcv 2.1.0 ops do not load$([ "$GPU" = 1 ] && echo ' or lack CUDA')" \
    "with torch $(installed_version torch): a wheel (MMCV_WHEEL, WHEELHOUSE)" \
    "must be built against this torch and Python" >&2
  exit 1
}
pip_install -c "$keep" -r requirements/runtime.txt -r requirements/tools.txt
pip_install -c "$keep" --no-build-isolation -e .
"$PY" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models, smt_mm; print('SMT-MM', smt_mm.__version__, 'installed')"
