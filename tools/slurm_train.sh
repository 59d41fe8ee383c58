#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Environment: GPUS (total, default 8), GPUS_PER_NODE (default 8, at most
# GPUS), CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun options), PORT
# (rendezvous port, default 29500), PYTHON (default python).
# One srun task per GPU; each runs tools/train.py --launcher=slurm.
set -e
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
[ "$GPUS" -lt "$GPUS_PER_NODE" ] && GPUS_PER_NODE=$GPUS
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE/..":${PYTHONPATH:-}
[ -n "${PORT:-}" ] && export MASTER_PORT=$PORT
# SRUN_ARGS is split on spaces on purpose: it holds several options.
# shellcheck disable=SC2086
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$HERE/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --launcher="slurm" "${@:5}"
