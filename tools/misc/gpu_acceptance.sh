#!/usr/bin/env bash
# An acceptance run for a GPU node: the self-check, the benchmark of SMT-T
# and SMT-B against the official code, 20 AMP iterations of Mask R-CNN SMT-B
# and the GPU test tier, in one call. Every step runs under its own
# `timeout`, within a total budget, and writes its results under $OUT as soon
# as they exist, so a run cut short still returns what finished;
# $OUT/summary.txt has one line per step.
#
# Where SMT-MM is installed, leave out the install step:
#   OUT=gpu_check GPU_SESSION_BUDGET=900 \
#     GPU_SESSION_STEPS='env selfcheck bench_t bench_b maskrcnn gpu_tests' \
#     bash tools/misc/gpu_session.sh
# For a node without network that has torch but not the OpenMMLab stack,
# fill the git-ignored .whl/ beforehand where there is a network:
#   bash tools/misc/gpu_session.sh prepare DIR
# copies DIR/device/*.whl (wheels for the node's Python and torch, mmcv with
# CUDA ops among them) and DIR/official/models_smt.py (the benchmark's
# official side), and downloads CPython 3.12 wheels of PyYAML (mmengine and
# mmcv import yaml) and Markdown (model-index, imported by mmpretrain, does).
# The install step then installs .whl/ with pip --target, keeping the node's
# torch. Rerun some steps only, in less time:
#   GPU_SESSION_STEPS='install maskrcnn' GPU_SESSION_BUDGET=200 \
#     bash tools/misc/gpu_session.sh
#
# Steps (names for GPU_SESSION_STEPS): env; install; selfcheck
# (tools/misc/selfcheck.py); bench_t and bench_b (tools/analysis/benchmark.py:
# fp32 and bf16 autocast, ours against the official code when .whl/ holds it,
# train step at 224x224 batch 64 and at 800x1216 with 2 images, latency, peak
# memory); maskrcnn (20 iterations of configs/det/smt_b_maskrcnn_3x.py with
# --amp on synthetic 1333x800 images: s/iteration, memory, an 8-GPU estimate
# of the 3x schedule); gpu_tests (pytest tests -m gpu).
#
# Try it on a CPU first:
#   GPU_SESSION_REHEARSAL=1 OUT=/tmp/out bash tools/misc/gpu_session.sh
# runs every step on the CPU with tiny sizes (the same tools, configs, model;
# the Mask R-CNN run in fp32 with fewer RoIs).
#
# Environment: OUT (default work_dirs/gpu_session), GPU_SESSION_BUDGET
# (seconds for all steps, default 330), GPU_SESSION_STEPS,
# GPU_SESSION_REHEARSAL, GPU_SESSION_CAP_SCALE (rehearsal: step limits x6 by
# default), GPU_SESSION_WHEELS (default .whl), GPU_SESSION_TMP (default
# /tmp/smt_gpu_session: installed packages, synthetic data).
set -uo pipefail
cd "$(dirname "$0")/../.."
SELF=$PWD/tools/misc/gpu_session.sh
ALL_STEPS='env install selfcheck bench_t bench_b maskrcnn gpu_tests'
OUT=${OUT:-$PWD/work_dirs/gpu_session}
BUDGET=${GPU_SESSION_BUDGET:-330}
STEPS=${GPU_SESSION_STEPS:-$ALL_STEPS}
REHEARSAL=${GPU_SESSION_REHEARSAL:-0}
WHEELS=${GPU_SESSION_WHEELS:-.whl}
TMP=${GPU_SESSION_TMP:-/tmp/smt_gpu_session}
PY=${PYTHON:-python3}
OFFICIAL=$WHEELS/models_smt.py
SUMMARY=$OUT/summary.txt
export PYTHONPATH=$TMP/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1

CAP_SCALE=1  # the step limits below are for a GPU node
if [ "$REHEARSAL" = 1 ]; then
  CAP_SCALE=${GPU_SESSION_CAP_SCALE:-6}  # a small, possibly busy CPU
  # one thread per process: OpenMP threads spinning on a shared, busy
  # machine made the benchmark 10-30x slower
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  SELFCHECK=(--device cpu --size 64 --batch 2 --seconds 2)
  BENCH=(--device cpu --batch 1 --size 32 --large-size 32 64 --large-batch 1
    --repeats 1 --warmup 1 --no-memory)
  # fp32: bf16 autocast has no hardware support on common CPUs (slow)
  DET_IMAGES=2 DET_SIZE='160 267' DET_WORKERS=1 DET_AMP=
else
  SELFCHECK=()
  BENCH=(--device cuda --batch 64 --large-size 800 1216 --large-batch 2
    --repeats 5 --warmup 2)
  DET_IMAGES=40 DET_SIZE='800 1333' DET_WORKERS=4 DET_AMP=--amp
fi

environment() {
  echo "date: $(date -u +%FT%TZ)  host: $(hostname)  nproc: $(nproc)"
  nvidia-smi --format=csv \
    --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit ||
    echo 'nvidia-smi: not available'
  "$PY" -c "import sys, torch
print('python', sys.version.split()[0], '| torch', torch.__version__,
      '| CUDA', torch.version.cuda, '| available', torch.cuda.is_available(),
      '| cuDNN', torch.backends.cudnn.version())"
  "$PY" -m pip list 2>/dev/null | grep -i -E '^(torch|numpy|opencv|nvidia)'
  ls -la "$WHEELS" 2>/dev/null || echo "no $WHEELS: the install step is not used"
}

install() {  # pip --target from the wheels: the node keeps its own torch
  if [ -f "$TMP/site/.complete" ]; then
    echo "already installed in $TMP/site (a rerun on the same machine)"
  else
    rm -rf "$TMP/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --target "$TMP/site" "$WHEELS"/*.whl || return 1
    touch "$TMP/site/.complete"
  fi
  "$PY" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models
import smt_mm
from mmcv.ops import get_compiling_cuda_version
print('imports ok: mmcv', mmcv.__version__, 'CUDA',
      get_compiling_cuda_version(), '| smt_mm from', smt_mm.__file__)"
}

bench() {  # bench t|b
  local official=()
  if [ -f "$OFFICIAL" ]; then
    official=(--official "$OFFICIAL")
  else
    echo "no $OFFICIAL: ours only (see the header of $SELF)"
  fi
  "$PY" tools/analysis/benchmark.py "${BENCH[@]}" --archs "$1" \
    --precisions fp32 bf16 ${official[@]+"${official[@]}"} \
    --out "$OUT/bench_$1.json" --markdown "$OUT/bench_$1.md"
}

maskrcnn() {  # DET_IMAGES / 2 iterations of 2 images: one epoch
  local data config
  data=$TMP/synthetic_coco_${DET_SIZE/ /x}
  config=$OUT/smt_b_maskrcnn_3x_synthetic.py
  if [ ! -f "$data/annotations/instances_train.json" ]; then
    # shellcheck disable=SC2086  # DET_SIZE is H W
    "$PY" tools/misc/make_synthetic_data.py coco "$data" --overwrite \
      --num-train "$DET_IMAGES" --num-val 2 --size $DET_SIZE || return 1
  fi
  cat >"$config" <<EOF
_base_ = '$PWD/configs/det/smt_b_maskrcnn_3x.py'
# no download (no network): a random initialisation times the same
model = dict(backbone=dict(init_cfg=None))
train_dataloader = dict(
    batch_size=2, num_workers=$DET_WORKERS, persistent_workers=True,
    dataset=dict(data_root='$data/',
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'),
                 metainfo=dict(classes=('square', 'disc', 'triangle'))))
train_cfg = dict(max_epochs=1, val_interval=1000)
val_cfg = None
val_dataloader = None
val_evaluator = None
# time and memory averaged over windows of 5 iterations, logged every 5
log_processor = dict(window_size=5)
default_hooks = dict(logger=dict(interval=5), checkpoint=None)
EOF
  if [ "$REHEARSAL" = 1 ]; then  # small images, fewer RoIs, each step
    cat >>"$config" <<EOF
model['train_cfg'] = dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                          rcnn=dict(sampler=dict(num=64)))
train_dataloader['dataset']['pipeline'] = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(267, 160), keep_ratio=True),
    dict(type='PackDetInputs')]
log_processor = dict(window_size=1)
default_hooks['logger'] = dict(interval=1)
EOF
  fi
  # shellcheck disable=SC2086  # DET_AMP is empty or --amp
  "$PY" tools/train.py "$config" $DET_AMP --work-dir "$OUT/maskrcnn_b" \
    --overwrite || return 1
  "$PY" - "$OUT/maskrcnn_b" "$DET_IMAGES" "$OUT/maskrcnn_b.json" <<'EOF'
import glob, json, statistics, sys
work, images, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
path = sorted(glob.glob(f'{work}/*/vis_data/scalars.json'))[-1]
rows = [json.loads(line) for line in open(path)]
rows = [r for r in rows if 'time' in r]
late = [r for r in rows if r['step'] > images // 4] or rows  # no warm-up
s_iter = statistics.mean(r['time'] for r in late)
# 3x: 36 epochs of COCO train2017 (117266 images with annotations) on 8
# GPUs x 2 images; training iterations only (no validation, and the DDP
# gradient exchange is not in a one-GPU figure)
iters_3x = 36 * -(-117266 // 16)
result = dict(
    iterations=rows[-1]['step'], images_per_iteration=2,
    s_per_iter=round(s_iter, 4),
    data_time=round(statistics.mean(r['data_time'] for r in late), 4),
    max_memory_mib=max((r['memory'] for r in rows if 'memory' in r),
                       default=None),  # CUDA only
    estimate_8gpu_3x_hours=round(iters_3x * s_iter / 3600, 1),
    estimate_note=f'{iters_3x} iterations x s/iter of one GPU',
    logged=[dict(step=r['step'], time=r['time'], memory=r.get('memory'))
            for r in rows])
with open(out, 'w') as f:
    json.dump(result, f, indent=1)
print('maskrcnn_b:', {k: v for k, v in result.items() if k != 'logged'})
EOF
}

gpu_tests() {
  "$PY" -m pytest tests -m gpu -q -rs -p no:cacheprovider \
    --junitxml="$OUT/gpu_tests.xml"
}

if [ "${1:-}" = prepare ]; then
  shared=${2:-../shared}
  for f in "$shared"/device/mmcv-2.1.0-cp312-*.whl \
    "$shared"/official/models_smt.py; do
    [ -f "$f" ] || { echo "prepare: no $f (give the folder holding device/ and official/)" >&2; exit 2; }
  done
  mkdir -p "$WHEELS"
  cp "$shared"/device/*.whl "$shared"/official/models_smt.py "$WHEELS"/
  PIP_NO_INDEX= "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 -d "$WHEELS" \
    pyyaml==6.0.4 markdown==3.11.3 || exit 1
  chmod u+w "$WHEELS"/*
  echo "$WHEELS: $(ls "$WHEELS" | wc -l) files, $(du -sh "$WHEELS" | cut -f1)"
  exit 0
fi
if [ "${1:-}" = __step ]; then  # one step, run by step() under timeout
  case $2 in
    env) environment ;;
    install) install ;;
    selfcheck) "$PY" tools/misc/selfcheck.py ${SELFCHECK[@]+"${SELFCHECK[@]}"} ;;
    bench_t) bench t ;;
    bench_b) bench b ;;
    maskrcnn) maskrcnn ;;
    gpu_tests) gpu_tests ;;
  esac
  exit
fi

# step NAME CAP: run step NAME, its output in $OUT/NAME.log, for at most CAP
# seconds and never past the budget; one line in $SUMMARY.
step() {
  local name=$1 cap=$2 left t0 rc
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  cap=$((cap * CAP_SCALE))
  left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 10 ]; then
    printf '%-10s skipped: the budget of %ss is spent\n' "$name" "$BUDGET" |
      tee -a "$SUMMARY"
    return 0
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  t0=$SECONDS
  # a fresh shell per step: `timeout` runs programs, not shell functions
  timeout -k 5 "$cap" bash "$SELF" __step "$name" >"$OUT/$name.log" 2>&1
  rc=$?
  printf '%-10s rc=%s %ss (limit %ss)%s\n' "$name" "$rc" $((SECONDS - t0)) \
    "$cap" "$([ "$rc" = 124 ] && echo ', timed out')" | tee -a "$SUMMARY"
}

for name in $STEPS; do
  case " $ALL_STEPS " in *" $name "*) ;; *)
    echo "GPU_SESSION_STEPS: no step '$name'; the steps are: $ALL_STEPS" >&2
    exit 2 ;;
  esac
done
case $BUDGET in '' | *[!0-9]*)
  echo "GPU_SESSION_BUDGET=$BUDGET: give whole seconds, e.g. 330" >&2
  exit 2 ;;
esac
mkdir -p "$OUT" "$TMP"
START=$SECONDS
echo "gpu_session: steps '$STEPS', budget ${BUDGET}s, rehearsal=$REHEARSAL," \
  "results in $OUT" | tee "$SUMMARY"
step env 45
step install 120
step selfcheck 90
step bench_t 100
step bench_b 140
step maskrcnn 150
step gpu_tests 180
printf 'total %ss\n' $((SECONDS - START)) | tee -a "$SUMMARY"
# the main figures in the call's output as well
for f in selfcheck.log bench_t.md bench_b.md; do
  [ -f "$OUT/$f" ] && { echo "=== $f"; tail -40 "$OUT/$f"; }
done
if [ -f "$OUT/maskrcnn.log" ]; then
  echo "=== maskrcnn"; grep '^maskrcnn_b:' "$OUT/maskrcnn.log"
fi
if [ -f "$OUT/gpu_tests.log" ]; then
  echo "=== gpu_tests"; tail -5 "$OUT/gpu_tests.log"
fi
exit 0
