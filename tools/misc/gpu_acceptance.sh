#!/usr/bin/env bash
# The acceptance run for a new GPU node or cluster: the self-check
# (tools/misc/selfcheck.py), the benchmark of SMT-T and SMT-B
# (tools/analysis/benchmark.py), 20 AMP iterations of Mask R-CNN SMT-B and
# the GPU test tier (pytest tests -m gpu), one after another. Every step runs
# under its own `timeout`, within a total time budget, and writes its results
# into the output folder as soon as they exist, so a run cut short still
# leaves what finished; OUT/summary.md sums the run up in markdown (a table
# of the steps, then the main figures).
#
# Usage:
#   bash tools/misc/gpu_acceptance.sh [--out DIR] [--budget SECONDS]
#       [--steps 'STEP ...'] [--wheelhouse DIR] [--official FILE]
#       [--rehearsal]
#
# Options:
#   --out DIR          results folder (default: work_dirs/gpu_acceptance)
#   --budget SECONDS   time for all steps together (default: 900; 2100 with
#                      --wheelhouse); a step that the budget leaves less than
#                      10 s is skipped, and says so in the summary
#   --steps 'STEP ...' the steps to run, in their order below (default: all
#                      but install; install too with --wheelhouse)
#   --wheelhouse DIR   first install SMT-MM and its stack into the active
#                      Python from this folder of wheels alone, with the
#                      offline install (WHEELHOUSE=DIR bash tools/install.sh,
#                      see docs/get_started.md), and the test tools from it
#   --official FILE    the official code's models/smt.py: the benchmark
#                      compares ours against it (else ours only)
#   --rehearsal        run every step on the CPU with tiny sizes (the same
#                      tools, configs and model; Mask R-CNN in fp32 with
#                      fewer RoIs, step limits x6), to try the script before
#                      a GPU node is at hand
#
# Steps: install (with --wheelhouse); env (versions, nvidia-smi); selfcheck;
# bench_t and bench_b (fp32 and bf16 autocast, train step at 224x224 batch
# 64 and at 800x1216 with 2 images, latency, peak memory); maskrcnn (20
# iterations of configs/det/smt_b_maskrcnn_3x.py with --amp on synthetic
# 1333x800 images: s/iteration, memory, an 8-GPU estimate of the 3x
# schedule); gpu_tests (pytest tests -m gpu).
#
# Examples:
#   bash tools/misc/gpu_acceptance.sh --out gpu_check --budget 1200
#   bash tools/misc/gpu_acceptance.sh --steps 'maskrcnn' --budget 200
#   bash tools/misc/gpu_acceptance.sh --rehearsal --out /tmp/rehearsal
#
# Environment: PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/../.."
SELF=$PWD/tools/misc/gpu_acceptance.sh
ALL_STEPS='install env selfcheck bench_t bench_b maskrcnn gpu_tests'
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

usage() {
  sed -n '/^# Usage:/,/^# Environment/p' "$SELF" | sed 's/^# \{0,1\}//'
}

# one clear line for bad input, then exit 2
die() {
  echo "gpu_acceptance: $*" >&2
  exit 2
}

if [ "${1:-}" != __step ]; then  # the options; steps get them exported
  OUT=$PWD/work_dirs/gpu_acceptance BUDGET= STEPS= WHEELHOUSE= OFFICIAL=
  REHEARSAL=0
  while [ $# -gt 0 ]; do
    case $1 in
      -h | --help) usage; exit 0 ;;
      --rehearsal) REHEARSAL=1; shift; continue ;;
      --out | --budget | --steps | --wheelhouse | --official)
        [ $# -ge 2 ] || die "$1 needs a value (see --help)" ;;
      *) die "unknown option '$1' (see --help)" ;;
    esac
    case $1 in
      --out) OUT=$2 ;;
      --budget) BUDGET=$2 ;;
      --steps) STEPS=$2 ;;
      --wheelhouse) WHEELHOUSE=$2 ;;
      --official) OFFICIAL=$2 ;;
    esac
    shift 2
  done
  if [ -n "$WHEELHOUSE" ]; then
    [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE is not a folder"
    WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
  fi
  if [ -n "$OFFICIAL" ]; then
    [ -f "$OFFICIAL" ] || die "--official $OFFICIAL is not a file (give" \
      "the official code's models/smt.py)"
    OFFICIAL=$(cd "$(dirname "$OFFICIAL")" && pwd)/$(basename "$OFFICIAL")
  fi
  case $BUDGET in
    '') BUDGET=$([ -n "$WHEELHOUSE" ] && echo 2100 || echo 900) ;;
    *[!0-9]*) die "--budget $BUDGET: give whole seconds, e.g. 900" ;;
  esac
  if [ -z "$STEPS" ]; then
    STEPS=${ALL_STEPS#install }
    [ -n "$WHEELHOUSE" ] && STEPS=$ALL_STEPS
  fi
  for name in $STEPS; do
    case " $ALL_STEPS " in *" $name "*) ;; *)
      die "--steps: no step '$name'; the steps are: $ALL_STEPS" ;;
    esac
  done
  case " $STEPS " in *' install '*)
    [ -n "$WHEELHOUSE" ] || die "the install step needs --wheelhouse DIR" ;;
  esac
  mkdir -p "$OUT" || die "--out $OUT: cannot create that folder"
  OUT=$(cd "$OUT" && pwd)
  export OUT REHEARSAL WHEELHOUSE OFFICIAL
fi

CAP_SCALE=1  # the step limits below are for a GPU node
if [ "$REHEARSAL" = 1 ]; then
  CAP_SCALE=6  # a small, possibly busy CPU
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

install() {  # the offline install, then the test tools from the same folder
  WHEELHOUSE=$WHEELHOUSE PYTHON=$PY bash tools/install.sh || return 1
  "$PY" -m pip install -q --no-index --find-links "$WHEELHOUSE" \
    -r requirements/tests.txt || return 1
  "$PY" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models
import smt_mm
from mmcv.ops import get_compiling_cuda_version
print('imports ok: mmcv', mmcv.__version__, 'CUDA',
      get_compiling_cuda_version(), '| smt_mm from', smt_mm.__file__)"
}

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
}

bench() {  # bench t|b
  local official=()
  if [ -n "$OFFICIAL" ]; then
    official=(--official "$OFFICIAL")
  else
    echo "no --official: ours only"
  fi
  "$PY" tools/analysis/benchmark.py "${BENCH[@]}" --archs "$1" \
    --precisions fp32 bf16 ${official[@]+"${official[@]}"} \
    --out "$OUT/bench_$1.json" --markdown "$OUT/bench_$1.md"
}

maskrcnn() {  # DET_IMAGES / 2 iterations of 2 images: one epoch
  local data config
  data=$OUT/synthetic_coco_${DET_SIZE/ /x}
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

SUMMARY=$OUT/summary.md

# step NAME CAP: run step NAME, its output in $OUT/NAME.log, for at most CAP
# seconds and never past the budget; one row in $SUMMARY.
step() {
  local name=$1 cap=$2 left t0 rc state
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  cap=$((cap * CAP_SCALE))
  left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 10 ]; then
    printf '| %s | skipped: the budget of %s s is spent | | |\n' "$name" \
      "$BUDGET" | tee -a "$SUMMARY"
    return 0
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  t0=$SECONDS
  # a fresh shell per step: `timeout` runs programs, not shell functions
  timeout -k 5 "$cap" bash "$SELF" __step "$name" >"$OUT/$name.log" 2>&1
  rc=$?
  case $rc in 0) state=ok ;; 124) state='timed out' ;; *) state="failed (exit $rc)" ;; esac
  printf '| %s | %s | %s | %s |\n' "$name" "$state" $((SECONDS - t0)) \
    "$cap" | tee -a "$SUMMARY"
}

# section TITLE FILE [LINES]: the end of FILE in $SUMMARY, if it exists
section() {
  [ -s "$2" ] || return 0
  printf '\n## %s\n\n' "$1"
  case $2 in
    *.md) tail -n "${3:-40}" "$2" ;;
    *) echo '```'; tail -n "${3:-40}" "$2"; echo '```' ;;
  esac
}

START=$SECONDS
{
  echo '# GPU acceptance run'
  echo
  echo "$(date -u +%FT%TZ) on $(hostname); steps: $STEPS; budget ${BUDGET} s;" \
    "rehearsal: $REHEARSAL; logs: \`STEP.log\` in this folder."
  echo
  echo '| step | result | seconds | limit |'
  echo '|---|---|---|---|'
} | tee "$SUMMARY"
step install 1200
step env 45
step selfcheck 90
step bench_t 100
step bench_b 140
step maskrcnn 150
step gpu_tests 180
{
  printf '\ntotal: %s s\n' $((SECONDS - START))
  section 'Environment' "$OUT/env.log"
  section 'Self-check' "$OUT/selfcheck.log"
  section 'Benchmark: SMT-T' "$OUT/bench_t.md"
  section 'Benchmark: SMT-B' "$OUT/bench_b.md"
  if [ -f "$OUT/maskrcnn.log" ]; then
    printf '\n## Mask R-CNN SMT-B\n\n```\n'
    grep '^maskrcnn_b:' "$OUT/maskrcnn.log" || tail -5 "$OUT/maskrcnn.log"
    echo '```'
  fi
  section 'GPU test tier' "$OUT/gpu_tests.log" 5
} | tee -a "$SUMMARY"
echo "results and summary.md in $OUT"
exit 0
